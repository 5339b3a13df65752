"""The `nares` flow for real (ephemeral Prefect, local Ray) with the dry-run stand-in trainer:
bounded retries of a failing architecture, an actor killed mid-sweep, and idempotent re-runs."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
import yaml

from nares.config import REPO_ROOT
from nares.sweep.journal import Journal
from nares.sweep.selection import order_jobs, select_archs
from tests.flow_support import isolated_flow_env, worker_pids

pytestmark = [pytest.mark.services, pytest.mark.slow]

FAILING = "4-8-4-8-5-8"   # arch id 2


@pytest.fixture
def flow_env(tmp_path, monkeypatch):
    """A private NARES_HOME and Prefect home, and a params file whose dry-run sleeps and fails on FAILING."""
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["presets"]["tiny"]["sweep"] = {"dry_run_sleep_ms": 300, "dry_run_fail_archs": [FAILING],
                                          "queue_depth": 2, "progress_every_s": 1}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    yield from isolated_flow_env(tmp_path, monkeypatch)


def test_retries_kill_and_rerun(flow_env):
    from prefect.testing.utilities import prefect_test_harness

    from flows.nares_flow import nares
    from nares.sweep.paths import journal_path

    journal = Journal(journal_path("tiny", 0))
    killed: list[int] = []

    def kill_one_busy_worker() -> None:
        end = time.monotonic() + 240
        while time.monotonic() < end and not killed:
            if len(journal.done_ids()) >= 2:
                busy = worker_pids("ray::ArchWorker.run")
                if busy:
                    os.kill(busy[0], signal.SIGKILL)
                    killed.append(busy[0])
            time.sleep(0.05)

    killer = threading.Thread(target=kill_one_busy_worker, daemon=True)
    killer.start()
    with prefect_test_harness(server_startup_timeout=120):
        state = nares(action="sweep", preset="tiny", archs="ids:1-12", mode="dry-run", return_state=True)
        n_events = len(list(journal.events()))
        again = nares(action="sweep", preset="tiny", archs="ids:1,3-12", mode="dry-run")
    killer.join(timeout=5)
    assert killed, "no busy worker was found to kill"
    assert state.is_failed()                                  # the failing architecture is reported, not dropped
    assert FAILING in str(state.result(raise_on_failure=False))

    events = list(journal.events())
    assert len(events) == n_events                             # the second run submitted nothing
    assert again["seed0"]["already_complete"] == 11 and again["seed0"]["total"] == 0
    starts = [e for e in events if e["event"] == "start"]
    assert [e["actor"] for e in starts[:4]] == [0, 1, 0, 1]   # work spread over both actors, largest first
    tiny_order = order_jobs(select_archs("ids:1-12"), "largest_first", width_base=1)
    assert [e["arch_id"] for e in starts[:4]] == [i for i, _ in tiny_order[:4]]
    done = [e["arch_id"] for e in events if e["event"] == "done"]
    assert sorted(done) == [1, *range(3, 13)]                 # every other architecture exactly once
    fail = [e for e in events if e["arch"] == FAILING and e["event"] in ("retry", "failed")]
    assert len(fail) == 3 and fail[-1]["event"] == "failed"   # max_retries = 2 → three attempts, then reported
    assert "injected failure" in fail[-1]["error"]
    assert any("worker lost" in e.get("error", "") for e in events if e["event"] in ("retry", "failed"))
