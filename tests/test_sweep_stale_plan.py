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
    assert line == f"{len(ckpts) * (2 if c10c else 1)} stale or missing cell(s) over {2 if c10c else 1} architecture(s)"
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
