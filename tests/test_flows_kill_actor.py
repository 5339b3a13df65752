"""A real sweep (ephemeral Prefect, local Ray, the trainer, the local S3 server) survives a worker killed
mid-training: every architecture ends complete exactly once, and a second run trains nothing."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid

import pyarrow.compute as pc
import pytest
import yaml

from nares.config import REPO_ROOT
from nares.constants import CHECKPOINT_KINDS
from nares.records import read_jsonl
from nares.sweep.journal import Journal
from tests.flow_support import isolated_flow_env, worker_pids
from tests.s3_fixtures import s3_server  # noqa: F401 - fixture

pytestmark = [pytest.mark.services, pytest.mark.slow]

ARCHS = "ids:1-2"


def small_params(path) -> None:
    """The tiny preset shrunk further: 3 epochs of 2 batches, weak attacks, 64 test images."""
    p = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    t = p["presets"]["tiny"]
    t["data"].update(train_limit=192, val_holdout=64, test_limit=64, corruption_limit=8)
    t["train"].update(batch_size=64, epochs=3, lr_milestones=[1, 2])
    t["checkpoints"] = {"save_epochs": [0, 1]}
    atk = {"steps": 1, "step_255": 8, "eps_255": 8, "init": "uniform"}
    t["validation"] = {"batch_size": 64, "pgd": atk, "cw": {**atk, "kappa": 0}}
    ev = {"steps": 5, "step_255": 2, "init": "uniform"}   # strong enough that the published orderings hold
    t["eval"].update(batch_size=64, pgd=ev, cw={**ev, "kappa": 0},
                     aa={"apgd_ce": {"n_iter": 5, "n_restarts": 1, "rho": 0.75},
                         "apgd_t": {"n_iter": 5, "n_restarts": 1, "rho": 0.75, "n_target_classes": 3}})
    t["sweep"] = {"queue_depth": 2, "max_actors": 1, "progress_every_s": 2}   # one worker: the kill hits a known run
    path.write_text(yaml.safe_dump(p))


@pytest.fixture
def sweep_env(tmp_path, monkeypatch, s3_server, data_dir):  # noqa: F811 - fixture argument
    small_params(tmp_path / "params.yaml")
    yield from isolated_flow_env(tmp_path, monkeypatch, NARES_DATA_DIR=data_dir, NARES_S3_ENDPOINT=s3_server.endpoint_url,
                                 NARES_S3_BUCKET=f"k-{uuid.uuid4().hex[:10]}", NARES_TABLES=tmp_path / "tables",
                                 NARES_RELEASES=tmp_path / "releases")


def test_killed_worker_resumes_and_rerun_trains_nothing(sweep_env, monkeypatch):
    from prefect.testing.utilities import prefect_test_harness

    from flows.nares_flow import nares
    from nares.store.tables import read_tables
    from nares.sweep.paths import default_tables_root, journal_path, runs_root

    runs = runs_root("tiny", 0)
    killed: list[int] = []

    def kill_when_an_epoch_is_saved() -> None:
        end = time.monotonic() + 400
        while time.monotonic() < end and not killed:
            mid_training = any((d / "state" / "state.pt").exists() and not (d / "train_done.json").exists()
                               for d in runs.glob("*-*"))
            if mid_training and (busy := worker_pids("ray::ArchWorker.run")):
                os.kill(busy[0], signal.SIGKILL)
                killed.append(busy[0])
            time.sleep(0.05)

    killer = threading.Thread(target=kill_when_an_epoch_is_saved, daemon=True)
    killer.start()
    with prefect_test_harness(server_startup_timeout=120):
        first = nares(action="sweep", preset="tiny", archs=ARCHS)["seed0"]
        killer.join(timeout=5)
        assert killed, "no training worker was killed"
        assert (first["done"], first["failed"]) == (2, 0)

        journal = Journal(journal_path("tiny", 0))
        events = list(journal.events())
        assert sorted(e["arch_id"] for e in events if e["event"] == "done") == [1, 2]
        lost = [e for e in events if e["event"] == "retry"]
        assert len(lost) == 1 and "worker lost" in lost[0]["error"]
        resumed = next(e for e in events if e["event"] == "done" and e["arch_id"] == lost[0]["arch_id"])
        assert resumed["resumed_from"] is not None and resumed["epochs_run"] < 3   # lost at most one epoch
        assert [e["event"] for e in events if e["event"] == "interrupted"] == ["interrupted"]  # queued job given back

        t = read_tables(default_tables_root("tiny", 0), ["manifest", "runs", "test_metrics"])
        for aid in (1, 2):
            kinds = t["manifest"].filter(pc.equal(t["manifest"]["arch_id"], aid)).column("kind").to_pylist()
            assert sorted(kinds) == sorted(CHECKPOINT_KINDS)                       # four checkpoints
            assert t["runs"].filter(pc.equal(t["runs"]["arch_id"], aid)).num_rows == 1   # one record
        assert t["test_metrics"].num_rows == 2

        n_events = len(events)
        second = nares(action="sweep", preset="tiny", archs=ARCHS)["seed0"]
        assert second["already_complete"] == 2 and second["total"] == 0
        assert len(list(journal.events())) == n_events

        # re-evaluate: nothing is stale; after a PGD metric-version bump, exactly the PGD cells are recomputed
        assert nares(action="re-evaluate", preset="tiny")["seed0"]["total"] == 0
        bumped = yaml.safe_load((sweep_env / "params.yaml").read_text())
        bumped["presets"]["full"]["eval"]["metric_versions"]["pgd"] = 2
        (sweep_env / "bumped.yaml").write_text(yaml.safe_dump(bumped))
        monkeypatch.setenv("NARES_PARAMS", str(sweep_env / "bumped.yaml"))
        third = nares(action="re-evaluate", preset="tiny")["seed0"]
        assert (third["total"], third["done"], third["failed"]) == (2, 2, 0)
        ledger = read_tables(default_tables_root("tiny", 0), ["ledger"])["ledger"].to_pylist()
        v2 = {(r["arch_id"], r["metric"]) for r in ledger if r["metric_version"] == 2}
        assert v2 == {(1, "pgd"), (2, "pgd")}
        assert nares(action="re-evaluate", preset="tiny")["seed0"]["total"] == 0

        # the records the real trainer produced pass validation and are published as a release
        from nares.release import fetch_release

        info = nares(action="publish", preset="tiny", archs=ARCHS, version="t1")["seed0"]
        assert info["n_archs"] == 2 and info["validation"]["success"]
        fetched = fetch_release("t1", dest=sweep_env / "fetched")
        assert sorted(r["arch_id"] for r in read_jsonl(fetched / "cifar10.jsonl")) == [1, 2]
