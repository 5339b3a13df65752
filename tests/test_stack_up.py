"""The embedded stack for real: S3, Prefect server, Ray head and worker come up on free ports, a deployment
run goes through the worker to Ray and completes (visible in Prefect with its artifacts), and `down`
leaves no process behind."""

from __future__ import annotations

import asyncio
import os
import shutil

import pytest

from nares.procs import pid_alive
from nares.store.local_server import free_port

pytestmark = [pytest.mark.services, pytest.mark.slow]


@pytest.fixture
def stack_home(tmp_path, monkeypatch):
    for k, v in {"NARES_HOME": tmp_path / "home", "NARES_PREFECT_PORT": free_port(), "NARES_RAY_PORT": free_port(),
                 "NARES_S3_PORT": free_port(), "NARES_S3_BUCKET": "nares"}.items():
        monkeypatch.setenv(k, str(v))
    for k in ("RAY_ADDRESS", "PREFECT_API_URL", "PREFECT_HOME", "NARES_S3_ENDPOINT", "NARES_PARAMS"):
        monkeypatch.delenv(k, raising=False)
    saved = dict(os.environ)
    yield tmp_path
    from nares.sweep.paths import ray_temp_dir
    from nares.sweep.stack import down

    down()
    shutil.rmtree(ray_temp_dir(), ignore_errors=True)       # Ray's session files (kept outside tmp_path)
    os.environ.clear()                                         # `up` exports the stack's settings: undo it
    os.environ.update(saved)


async def _artifacts(flow_run_id):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    async with get_client() as client:
        return await client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))


def test_stack_runs_a_deployment_and_tears_down(stack_home):
    from nares.sweep import stack

    st = stack.up(num_cpus=2)
    pids = [st[n] for n in ("prefect-server", "ray-head", "prefect-worker")]
    assert all(pids) and st["s3"]["pid"]
    assert (stack_home / "home" / "stack.env").read_text().count("export ") >= 10
    assert stack.up()["prefect-server"] == pids[0]             # idempotent: the running server is kept

    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    # the stack's API, also when an earlier test in this process fixed Prefect's settings context
    with temporary_settings(updates={PREFECT_API_URL: os.environ["PREFECT_API_URL"]}):
        run = run_deployment("nares/full-sweep", parameters={"preset": "tiny", "archs": "ids:1-16", "mode": "dry-run"},
                             timeout=240, poll_interval=1)
        assert run.state.is_completed(), run.state
        keys = {a.key for a in asyncio.run(_artifacts(run.id))}
    assert {"nares-sweep-tiny-seed0", "nares-sweep-tiny-seed0-summary"} <= keys

    from nares.sweep.journal import Journal
    from nares.sweep.paths import journal_path

    assert Journal(journal_path("tiny", 0)).done_ids() == set(range(1, 17))

    stopped = stack.down()
    assert stopped == {"prefect-worker": True, "prefect-server": True, "ray-head": True, "s3": True}
    assert not [pid for pid in pids if pid_alive(pid)]
    assert stack.status()["prefect-server"] is None
