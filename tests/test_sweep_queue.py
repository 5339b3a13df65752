"""The work queue's retry bound, the journal's cost ledger, and the stale-cell rule, on hand-made cases."""

from __future__ import annotations

import json

import pyarrow as pa

from nares.sweep.journal import Journal
from nares.sweep.queue import WorkQueue, progress_markdown
from nares.sweep.stale import Cell, group_by_run, stale_cells


def test_queue_retries_then_reports_failure():
    q = WorkQueue([(3, "a"), (2, "b"), (1, "c")], max_retries=2)
    first = q.take()
    assert first.arch_id == 3 and q.progress()["running"] == 1
    for attempt in range(3):
        assert q.fail(first, f"boom {attempt}") is (attempt < 2)
        if attempt < 2:
            assert q.take() is first                       # requeued at the front: cost order kept
    assert [j.arch_id for j in q.failed] == [3] and first.attempts == 3 and first.errors[-1] == "boom 2"
    b = q.take()
    q.interrupt(b)                                         # its worker died before it started: not counted
    assert b.attempts == 0 and q.take() is b
    q.finish(b, 7200.0)
    q.finish(q.take(), 0.0)
    p = q.progress()
    assert q.finished and (p["done"], p["failed"], p["pending"], p["device_hours"]) == (2, 1, 0, 2.0)
    md = progress_markdown("sweep", p, q.failed)
    assert "| 3 | a | 3 | boom 2 |" in md


def test_journal_cost_and_summary(tmp_path):
    j = Journal(tmp_path / "journal.jsonl")
    j.record("start", arch_id=1, arch="x")
    j.record("done", arch_id=1, arch="x", train_seconds=3600.0, eval_seconds=1800.0)
    j.record("start", arch_id=2, arch="y")
    j.record("retry", arch_id=2, arch="y", error="e")
    j.record("start", arch_id=2, arch="y")
    j.record("failed", arch_id=2, arch="y", error="e")
    j.record("start", arch_id=3, arch="z")
    with open(j.path, "a") as fh:
        fh.write('{"event": "done", "arch_id": 3')          # torn last line: ignored
    assert j.done_ids() == {1}
    assert j.cost() == {1: {"train": 3600.0, "eval": 1800.0}}
    assert j.summary() == {"done": 1, "failed": 1, "running": 1, "retrying": 0, "device_hours": 1.5}
    assert all(json.loads(line)["event"] for line in j.path.read_text().splitlines()[:-1])


def test_stale_cells_missing_old_version_and_failed():
    versions = {"clean": 2, "pgd": 1}
    ledger = pa.Table.from_pylist([
        {"arch_id": 1, "checkpoint": "best", "metric": "clean", "metric_version": 2, "status": "ok"},
        {"arch_id": 1, "checkpoint": "best", "metric": "pgd", "metric_version": 1, "status": "done"},
        {"arch_id": 2, "checkpoint": "best", "metric": "clean", "metric_version": 1, "status": "ok"},   # stale
        {"arch_id": 2, "checkpoint": "best", "metric": "pgd", "metric_version": 1, "status": "failed"},
        {"arch_id": 9, "checkpoint": "best", "metric": "pgd", "metric_version": 1, "status": "ok"},     # not asked
    ])
    cells = stale_cells(ledger, [1, 2, 3], versions, ["best"])
    assert cells == [Cell(2, "best", "clean", 2), Cell(2, "best", "pgd", 1),
                     Cell(3, "best", "clean", 2), Cell(3, "best", "pgd", 1)]
    assert group_by_run(cells) == {(2, "best"): ["clean", "pgd"], (3, "best"): ["clean", "pgd"]}
    assert stale_cells(ledger, [1], versions, ["best"]) == []
    assert stale_cells([], [1], {"aa": 1}, ["best", "last"]) == [Cell(1, "best", "aa", 1), Cell(1, "last", "aa", 1)]
