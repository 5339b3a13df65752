"""The scheduled `nares/re-evaluate` on the embedded stack re-evaluates what that stack produced: a real
stack (S3, Prefect server, Ray head, worker) trains one architecture through `nares/full-sweep` (tiny
preset), a metric version is bumped, the deployment's own schedule (as `prefect.yaml` registered it,
parameters untouched) is moved to fire in a few seconds, and the run the scheduler creates recomputes
exactly the one stale ledger cell."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import time
import uuid

import pytest
import yaml

from tests.test_flows_kill_actor import small_params
from tests.test_stack_up import clean_stack_env

pytestmark = [pytest.mark.services, pytest.mark.slow]

CELL_KEY = ("arch_id", "checkpoint", "metric", "metric_version", "status", "started_at", "finished_at")


@pytest.fixture
def demo_stack(tmp_path, monkeypatch, data_dir):
    clean_stack_env(tmp_path, monkeypatch)
    small_params(tmp_path / "params.yaml")
    for k, v in {"NARES_PARAMS": tmp_path / "params.yaml", "NARES_DATA_DIR": data_dir,
                 "NARES_TABLES": tmp_path / "tables", "NARES_RELEASES": tmp_path / "releases",
                 "NARES_S3_BUCKET": f"r-{uuid.uuid4().hex[:10]}",
                 "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": 2}.items():
        monkeypatch.setenv(k, str(v))
    saved = dict(os.environ)
    yield tmp_path
    from factory.stack import down
    from tasks.cluster import ray_temp_dir

    down()
    import shutil

    shutil.rmtree(ray_temp_dir(), ignore_errors=True)
    os.environ.clear()                                         # `up` exports the stack's settings: undo it
    os.environ.update(saved)


async def _fire_soon(name: str, in_s: float):
    """Move the deployment's schedule to an hourly interval whose first run is `in_s` seconds from now."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.schedules import IntervalSchedule

    async with get_client() as client:
        dep = await client.read_deployment_by_name(name)
        assert len(dep.schedules) == 1 and dep.schedules[0].active    # the nightly cron of prefect.yaml
        anchor = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=in_s)
        await client.update_deployment_schedule(dep.id, dep.schedules[0].id, schedule=IntervalSchedule(
            interval=dt.timedelta(hours=1), anchor_date=anchor))
        return dep


async def _finished_runs(deployment_id):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    async with get_client() as client:
        runs = await client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])))
    return [r for r in runs if r.state is not None and r.state.is_final()]


def _cells(tables_root) -> set[tuple]:
    from nares.store.tables import read_tables

    return {tuple(r[k] for k in CELL_KEY) for r in read_tables(tables_root, ["ledger"])["ledger"].to_pylist()}


def test_scheduled_reevaluate_recomputes_only_the_stale_cell(demo_stack):
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from factory import stack
    from nares.sweep.paths import default_tables_root, run_dir

    stack.up(num_cpus=2)
    with temporary_settings(updates={PREFECT_API_URL: os.environ["PREFECT_API_URL"]}):
        sweep = run_deployment("nares/full-sweep", parameters={"preset": "tiny", "archs": "ids:1", "mode": "train"},
                               timeout=900, poll_interval=2)
        assert sweep.state.is_completed(), sweep.state
        tables = default_tables_root("tiny", 0)
        before = _cells(tables)
        assert {(c[2], c[3]) for c in before} >= {("pgd", 1), ("cw", 1), ("clean", 1)}
        evals = run_dir("tiny", 0, "4-8-4-8-4-8") / "evaluations.jsonl"
        n_evals = len(evals.read_text().splitlines())

        params = yaml.safe_load((demo_stack / "params.yaml").read_text())
        params["presets"]["full"]["eval"]["metric_versions"]["pgd"] = 2   # tiny inherits it: the PGD cell is stale
        (demo_stack / "params.yaml").write_text(yaml.safe_dump(params))

        dep = asyncio.run(_fire_soon("nares/re-evaluate", in_s=10))
        assert dep.parameters.get("preset") == "all"                # the stack's parameters, not preset `full`
        end = time.monotonic() + 600
        while not (runs := asyncio.run(_finished_runs(dep.id))) and time.monotonic() < end:
            time.sleep(2)
    assert len(runs) == 1, "the schedule did not fire within 10 minutes"
    run = runs[0]
    assert run.auto_scheduled and run.state.is_completed(), run.state
    assert run.parameters == {"action": "re-evaluate", "preset": "all", "seeds": None, "space": None, "dataset": None,
                              "suite": None}

    after = _cells(tables)
    assert before <= after                                       # every earlier cell kept as it was
    new = after - before
    assert [(c[0], c[1], c[2], c[3], c[4]) for c in new] == [(1, "best", "pgd", 2, "done")]
    assert len(evals.read_text().splitlines()) == n_evals + 1    # one cell evaluated, nothing else
