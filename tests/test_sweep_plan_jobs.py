"""A sweep's plan in the library: the selected architectures not yet done, in the preset's cost order."""

from __future__ import annotations

from nares.config import load_preset
from nares.spaces.wrn import Arch, arch_id, macs


def test_plan_jobs_skips_done_and_orders_by_cost():
    from nares.sweep.selection import plan_jobs

    cfg = load_preset("tiny")
    wb = cfg["model"]["width_base"]
    jobs, skipped = plan_jobs(cfg, "ids:1-6", done={2, 5, 99})
    assert skipped == 2 and sorted(i for i, _ in jobs) == [1, 3, 4, 6]
    cost = [macs(Arch.parse(a), wb) for _, a in jobs]
    assert cfg["sweep"]["order"] == "largest_first" and cost == sorted(cost, reverse=True)
    assert all(str(Arch.parse(a)) == a for _, a in jobs)       # canonical strings
    assert plan_jobs(cfg, "list:4-8-4-8-4-8") == ([(arch_id(Arch.parse("4-8-4-8-4-8")), "4-8-4-8-4-8")], 0)


def test_pack_jobs_equals_the_pool_plan():
    """The library's packing of a preset is what the Ray pool plans with (tasks.pool.plan_for)."""
    from nares.sweep.packing import pack_jobs
    from tasks.pool import plan_for

    cfg = load_preset("full")
    cfg["sweep"]["packing"] = {**cfg["sweep"]["packing"], "enabled": True, "gpu_memory_gib": 24.0}
    jobs = [(1, "4-8-4-8-4-8"), (2, "11-16-11-16-11-16"), (3, "7-12-7-12-7-12")]
    packing, peaks = pack_jobs(cfg, [a for _, a in jobs], 2)
    pool = plan_for(cfg, jobs, {"GPU": 2.0, "CPU": 8.0})
    assert (pool.packing, pool.peaks) == (packing, peaks) and set(peaks) == {a for _, a in jobs}
    assert len(packing.shares) == pool.n_actors and all(0 < s <= 1 for s in packing.shares)
