"""Memory-aware GPU packing on CPU: the memory model, share planning and the dispatcher's placement, with
made-up memory figures (pure functions; no GPU, no Ray cluster)."""

from __future__ import annotations

import itertools

import pytest
import torch

from nares.config import load_preset
from nares.spaces.wrn import params
from nares.sweep.packing import (
    GIB,
    MemoryModel,
    activation_elements,
    plan_shares,
    share_grid,
    share_needed,
)
from nares.sweep.queue import WorkQueue
from nares.sweep.selection import SweepError
from tasks.pool import Dispatcher, plan_for

SMALL, WRN, LARGE = "4-8-4-8-4-8", "5-10-5-10-5-10", "11-16-11-16-11-16"


def test_activation_elements_by_hand():
    # stem 16·32², then depth · channels · H·W with channels 16·W, 32·W, 64·W at 32², 16², 8²
    assert activation_elements(SMALL) == 16 * 1024 + 4 * 128 * 1024 + 4 * 256 * 256 + 4 * 512 * 64 == 933_888
    assert activation_elements(WRN) == 16 * 1024 + 5 * 160 * 1024 + 5 * 320 * 256 + 5 * 640 * 64
    assert activation_elements(SMALL, width_base=1) == 16 * 1024 + 4 * 8 * 1024 + 4 * 16 * 256 + 4 * 32 * 64


def test_memory_model_fit_recovers_coefficients_and_never_underestimates():
    true = MemoryModel(3e8, 20.0, 12.0)
    rows = [{"arch": a, "width_base": 16, "batch": b, "peak_bytes": true.peak_bytes(a, 16, b)}
            for a, b in ((SMALL, 128), (WRN, 128), (LARGE, 64), ("7-12-9-14-4-8", 32))]
    fit = MemoryModel.fit(rows)
    assert (fit.a_bytes, fit.b_bytes_per_activation, fit.c_bytes_per_param) == pytest.approx((3e8, 20.0, 12.0), rel=1e-6)
    # one measurement: the conservative proportions, scaled so that the measured peak is reproduced
    one = MemoryModel.fit(rows[:1])
    assert one.peak_bytes(SMALL, 16, 128) == pytest.approx(rows[0]["peak_bytes"])
    noisy = [{**r, "peak_bytes": r["peak_bytes"] * f} for r, f in zip(rows, (1.0, 1.1, 0.95, 1.02), strict=True)]
    fit = MemoryModel.fit(noisy)
    assert all(fit.peak_bytes(r["arch"], 16, r["batch"]) >= r["peak_bytes"] * (1 - 1e-9) for r in noisy)
    with pytest.raises(ValueError, match="no measured peaks"):
        MemoryModel.fit([])


def test_conservative_model_by_hand(tmp_path):
    m = MemoryModel.conservative()
    want = GIB + 48 * 128 * activation_elements(WRN) + 16 * params(WRN)
    assert m.peak_bytes(WRN, 16, 128) == pytest.approx(want)
    m.save(tmp_path / "m.json")
    assert MemoryModel.load(tmp_path / "m.json") == m


def test_shares():
    assert share_grid(4) == [1.0, 0.5, 0.25] and share_grid(1) == [1.0] and share_grid(6) == [1.0, 0.5, 0.25]
    gpu = 80 * GIB
    assert share_needed(10 * GIB, gpu, share_grid(4), 0.9) == 0.25     # 18 GiB quarter
    assert share_needed(20 * GIB, gpu, share_grid(4), 0.9) == 0.5
    assert share_needed(72 * GIB, gpu, share_grid(4), 0.9) == 1.0
    assert share_needed(73 * GIB, gpu, share_grid(4), 0.9) is None


def test_plan_shares_splits_gpus_by_work_and_lists_too_large():
    gpu = 80 * GIB
    peaks = {"big": 50 * GIB, "mid": 30 * GIB, "s1": 10 * GIB, "s2": 12 * GIB, "huge": 100 * GIB}
    work = {"big": 4.0, "mid": 2.0, "s1": 1.0, "s2": 1.0, "huge": 9.0}
    plan = plan_shares(peaks, work, 4, gpu, max_per_gpu=4, headroom=0.9)
    # sizes needed: 1 (big, work 4), 1/2 (mid, 2), 1/4 (s1+s2, 2); one GPU each, the 4th to the whole-GPU size
    assert plan.shares == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25]
    assert plan.too_large == {"huge": 100 * GIB}
    assert plan.budget(0) == pytest.approx(72 * GIB) and plan.budget(7) == pytest.approx(18 * GIB)
    assert plan.fits(2, 30 * GIB) and not plan.fits(2, 50 * GIB) and plan.fits(4, None)
    # one GPU: only the largest needed size, so every architecture still has an actor
    assert plan_shares(peaks, work, 1, gpu).shares == [1.0]
    # only small architectures: every GPU split in four
    assert plan_shares({"s1": 10 * GIB}, {}, 2, gpu).shares == [0.25] * 8


def _packed_cfg(**packing):
    cfg = load_preset("full")
    cfg["sweep"]["packing"].update({"enabled": True, "gpu_memory_gib": 80, **packing})
    return cfg


def test_plan_for_packs_small_architectures_with_the_conservative_model():
    jobs = [(15625, LARGE), (3000, WRN), (1, SMALL)]
    res = {"GPU": 2.0, "CPU": 16.0}
    plan = plan_for(_packed_cfg(), jobs, res)
    peak = MemoryModel.conservative().peak_bytes
    assert plan.peaks == {a: peak(a, 16, 128) for _, a in jobs}
    assert 0.25 * 80 * GIB * 0.9 < peak(LARGE, 16, 128) <= 0.5 * 80 * GIB * 0.9   # needs half a GPU
    assert peak(WRN, 16, 128) <= 0.25 * 80 * GIB * 0.9 and peak(SMALL, 16, 128) < peak(WRN, 16, 128)  # a quarter
    assert plan.packing.shares == [0.5, 0.5, 0.25, 0.25, 0.25, 0.25] and plan.n_actors == 6
    assert [plan.options_of(i)["num_gpus"] for i in range(plan.n_actors)] == plan.packing.shares
    assert sum(plan.packing.shares) == pytest.approx(2.0)
    off = plan_for(load_preset("full"), jobs, res)                 # packing off: gpus_per_actor as before
    assert off.packing is None and off.n_actors == 2 and off.options_of(1)["num_gpus"] == 1
    cpu = plan_for(_packed_cfg(), jobs, {"CPU": 4.0})              # no GPU: packing does not apply
    assert cpu.kind == "cpu" and cpu.packing is None
    if not torch.cuda.is_available():                              # the driver cannot tell the GPU's memory
        with pytest.raises(SweepError, match="gpu_memory_gib is null"):
            plan_for(_packed_cfg(gpu_memory_gib=None), jobs, res)


def test_dispatcher_places_each_architecture_on_an_actor_whose_share_fits():
    cfg = _packed_cfg(gpu_memory_gib=32)
    jobs = [(15625, LARGE), (9000, "11-16-11-16-11-14"), (3000, WRN), (2, "4-8-4-8-4-10"), (1, SMALL)]
    plan = plan_for(cfg, jobs, {"GPU": 2.0, "CPU": 8.0})
    shares = plan.packing.shares
    refs = itertools.count()
    placed: dict[str, list[int]] = {}
    events = []

    def submit(actor, job):
        placed.setdefault(job.arch, []).append(actor)
        return next(refs)

    d = Dispatcher(WorkQueue(jobs, 0), list(range(plan.n_actors)), submit, lambda j, r: None,
                   lambda e, j, **k: events.append((e, j.arch, k.get("error", ""))), depth=1,
                   fits=plan.fits, unfit=plan.unfit_reason)
    d._reject_unfit()
    d._fill()
    too_big = {a for _, a in jobs if plan.peaks[a] > 32 * GIB * 0.9}
    assert LARGE in too_big                                         # > 28.8 GiB: reported, never submitted
    assert {a for e, a, _ in events if e == "failed"} == too_big
    assert all("exceeds every actor's GPU share" in err for e, _, err in events if e == "failed")
    assert {j.arch for j in d.queue.failed} == too_big and all(j.attempts == 0 for j in d.queue.failed)
    for arch, actors in placed.items():
        for i in actors:
            assert plan.peaks[arch] <= shares[i] * 32 * GIB * 0.9, (arch, i, shares[i])
    assert set(placed) == {a for _, a in jobs} - too_big             # everything else went out at once
    assert min(shares[i] for i in placed[SMALL]) < 1.0                # the smallest shares a GPU
