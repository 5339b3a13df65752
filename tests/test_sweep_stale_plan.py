"""Re-evaluation planning in the library: stale cells of a tables folder under a preset, and the jobs they make."""

from __future__ import annotations

import pyarrow as pa
import pytest

from nares.config import load_preset
from nares.data import corruptions_available
from nares.spaces.wrn import ArchIndex
from nares.store.tables import SCHEMAS, write_tables
from nares.sweep.selection import SweepError
from nares.sweep.stale import reevaluate_jobs, stale_groups
from nares.train.runtime import training_hash


def _table(name, rows):
    schema = SCHEMAS[name]
    return pa.Table.from_pylist([{f.name: r.get(f.name) for f in schema} for r in rows], schema=schema)


def _write(root, cfg, ledger):
    manifest = [{"arch_id": a, "kind": k, "key": f"k{a}{k}", "sha256": "s", "size": 1, "epoch": 1}
                for a in (2, 5) for k in ("best", "last")]
    write_tables({"manifest": _table("manifest", manifest), "ledger": _table("ledger", ledger)}, root)


def test_stale_groups_and_jobs(tmp_path):
    cfg = load_preset("tiny")
    versions = dict(cfg["eval"]["metric_versions"])
    ckpts = list(cfg["sweep"]["reevaluate_checkpoints"])
    h = training_hash(cfg)
    done = [{"arch_id": a, "checkpoint": c, "metric": m, "metric_version": v, "status": "ok"}
            for a in (2, 5) for c in ckpts for m, v in versions.items()]
    train = [{"arch_id": a, "checkpoint": "", "metric": "train", "metric_version": 1, "status": "done",
              "preset_hash": h} for a in (2, 5)]
    stale = [r for r in done if not (r["arch_id"] == 5 and r["metric"] == "pgd")
             and not (r["arch_id"] == 2 and r["metric"] == "corruptions")]
    stale.append({"arch_id": 5, "checkpoint": ckpts[0], "metric": "pgd", "metric_version": versions["pgd"] - 1,
                  "status": "ok"})
    _write(tmp_path, cfg, stale + train)
    groups, line = stale_groups(cfg, tmp_path)
    c10c = corruptions_available()           # CIFAR-10-C absent: its cells are not scheduled
    assert groups == {**{(5, c): ["pgd"] for c in ckpts}, **({(2, c): ["corruptions"] for c in ckpts} if c10c else {})}
    held = ", ".join(m for m in versions if c10c or m != "corruptions")
    assert line == (f"{len(ckpts) * (2 if c10c else 1)} stale or missing cell(s) over {2 if c10c else 1} "
                    f"architecture(s) of {held}")
    jobs, cells = reevaluate_jobs(cfg, groups)
    assert jobs[-1] == (5, str(ArchIndex.default().arch_of(5))) and len(jobs) == (2 if c10c else 1)
    assert cells[5] == [(c, ["pgd"]) for c in sorted(ckpts)]
    assert stale_groups(cfg, tmp_path / "nothing") == ({}, f"no tables at {tmp_path / 'nothing'} yet")


def test_stale_groups_refuses_runs_of_another_training_preset(tmp_path):
    cfg = load_preset("tiny")
    _write(tmp_path, cfg, [{"arch_id": 2, "checkpoint": "", "metric": "train", "metric_version": 1,
                            "status": "done", "preset_hash": "other"}])
    with pytest.raises(SweepError, match="^arch id\\(s\\) 2 were trained with training hash other"):
        stale_groups(cfg, tmp_path)


def _done_rows(cfg, metrics, archs=(2, 5)):
    from nares.evaluations import get_evaluation

    h = training_hash(cfg)
    return ([{"arch_id": a, "checkpoint": "best", "metric": m, "metric_version": get_evaluation(m).version(cfg),
              "status": "done"} for a in archs for m in metrics]
            + [{"arch_id": a, "checkpoint": "all", "metric": "train", "metric_version": 1, "status": "done",
                "preset_hash": h} for a in archs])


def test_a_suite_schedules_only_its_missing_cells_in_suite_order(tmp_path):
    from nares.sweep.request import not_evaluable, suite_evaluations

    cfg = load_preset("tiny")
    _write(tmp_path, cfg, _done_rows(cfg, ["clean", "fgsm", "pgd", "cw", "aa", "complexity"]))
    jung = [m for m in suite_evaluations(cfg, "jung") if m not in not_evaluable(cfg, suite_evaluations(cfg, "jung"))]
    groups, line = stale_groups(cfg, tmp_path, "jung")
    assert groups == {(2, "best"): jung, (5, "best"): jung} and jung[-1] == "masking"
    assert line == f"{2 * len(jung)} stale or missing cell(s) over 2 architecture(s) of {', '.join(jung)}"
    assert stale_groups(cfg, tmp_path, "wsr")[0] == {(2, "best"): ["wsr"], (5, "best"): ["wsr"]}  # clean is current
    with pytest.raises(SweepError, match="^parameter suite='nope': unknown suite 'nope'"):
        stale_groups(cfg, tmp_path, "nope")


def test_without_a_suite_the_evaluations_the_ledger_holds_are_kept_current(tmp_path):
    cfg = load_preset("tiny")
    rows = [r for r in _done_rows(cfg, ["clean", "wsr"]) if not (r["arch_id"] == 5 and r["metric"] == "wsr")]
    _write(tmp_path, cfg, rows)
    assert stale_groups(cfg, tmp_path) == ({(5, "best"): ["wsr"]},
                                           "1 stale or missing cell(s) over 1 architecture(s) of clean, wsr")
    _write(tmp_path / "fresh", cfg, [r for r in rows if r["metric"] == "train"])  # nothing evaluated yet: nares
    groups, _ = stale_groups(cfg, tmp_path / "fresh")
    assert groups[(2, "best")][:5] == ["clean", "fgsm", "pgd", "cw", "aa"]


def test_a_sampled_spaces_jobs_take_their_architectures_from_the_results_table(tmp_path):
    from nares.results.build import LongBuilder
    from nares.results.store import write_results
    from nares.spaces import space_for

    cfg = load_preset("robnet-tiny")
    space = space_for(cfg)
    sample = space.sample(2, 5)
    groups = {(1, "best"): ["wsr"], (2, "best"): ["wsr"]}
    with pytest.raises(SweepError, match=r"^arch id\(s\) 1, 2 of space 'robnet' have no architecture in the results "
                                         r"table under .*: their sweep's sample is not recorded there$"):
        reevaluate_jobs(cfg, groups, tmp_path)
    b = LongBuilder()
    for i, a in enumerate(sample, 1):
        b.add(2, [40.0, 1.0], dataset="cifar10", space="robnet", arch_id=i, arch=space.format(a), seed=0,
              checkpoint="best", evaluation="clean", metric=["acc", "loss"], key="")
    write_results(b.table(), tmp_path)
    jobs, cells = reevaluate_jobs(cfg, groups, tmp_path)
    assert jobs == [(1, space.format(sample[0])), (2, space.format(sample[1]))]
    assert cells == {1: [("best", ["wsr"])], 2: [("best", ["wsr"])]}
