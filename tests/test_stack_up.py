"""The embedded stack for real: S3, Prefect server, Ray head and worker come up on free ports with an empty
`$HOME` (no Ray token there: the stack makes its own), listen on 127.0.0.1 only, a deployment run goes
through the worker to Ray and completes (visible in Prefect with its artifacts), and `down` leaves no
process behind and nothing under `$HOME`."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import shutil
import stat
from pathlib import Path

import pytest

from factory.procs import pid_alive
from factory.stack import free_port_env
from tests.flow_support import descendant_pids

pytestmark = [pytest.mark.services, pytest.mark.slow]


def clean_stack_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A private NARES_HOME, an empty HOME (and XDG folders in it), free ports, no outside Prefect/Ray/S3 settings."""
    (tmp_path / "user").mkdir()
    env = {"NARES_HOME": tmp_path / "home", "NARES_S3_BUCKET": "nares", "HOME": tmp_path / "user",
           **{f"XDG_{k}_HOME": tmp_path / "user" / f".{k.lower()}" for k in ("CONFIG", "CACHE", "DATA", "STATE")},
           **free_port_env(n_worker_ports=100)}
    for k, v in env.items():
        monkeypatch.setenv(k, str(v))
    for k in ("RAY_ADDRESS", "PREFECT_API_URL", "PREFECT_HOME", "NARES_S3_ENDPOINT", "NARES_PARAMS", "RAY_AUTH_TOKEN",
              "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE", "NARES_CACHE_DIR", "MPLCONFIGDIR"):
        monkeypatch.delenv(k, raising=False)


def listening(pids: set[int]) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket in LISTEN state held by `pids`, from /proc."""
    inodes = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                link = os.readlink(fd)
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
        except OSError:
            continue
    out = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            f = line.split()
            if f[3] == "0A" and f[9] in inodes:
                addr, port = f[1].split(":")
                raw = bytes.fromhex(addr)                # 32-bit words in host (little-endian) order
                ip = ipaddress.ip_address(b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4)))
                out.add((str(getattr(ip, "ipv4_mapped", None) or ip), int(port, 16)))
    return out


@pytest.fixture
def stack_home(tmp_path, monkeypatch):
    clean_stack_env(tmp_path, monkeypatch)
    saved = dict(os.environ)
    yield tmp_path
    from factory.stack import down
    from tasks.cluster import ray_temp_dir

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
    from factory import stack

    st = stack.up(num_cpus=2)
    pids = [st[n] for n in ("prefect-server", "ray-head", "prefect-worker")]
    assert all(pids) and st["s3"]["pid"]
    token = stack_home / "home" / "auth" / "ray-token"
    assert stat.S_IMODE(token.stat().st_mode) == 0o600 and len(token.read_text()) == 64
    env_file = (stack_home / "home" / "stack.env").read_text()
    assert f'export RAY_AUTH_TOKEN_PATH="{token}"' in env_file and token.read_text() not in env_file
    assert f'export NARES_RAY_CLIENT_PORT="{os.environ["NARES_RAY_CLIENT_PORT"]}"' in env_file
    assert stack.up()["prefect-server"] == pids[0]             # idempotent: the running server is kept

    # every listener of every stack process is on loopback; the configured ports are among them
    procs = set(pids) | {st["s3"]["pid"]}
    for pid in list(procs):
        procs |= descendant_pids(pid)
    socks = listening(procs)
    assert socks and {a for a, _ in socks} == {"127.0.0.1"}, socks
    wanted = {int(os.environ[v]) for v in ("NARES_S3_PORT", "NARES_PREFECT_PORT", "NARES_RAY_PORT",
                                           "NARES_RAY_CLIENT_PORT", "NARES_RAY_DASHBOARD_AGENT_PORT")}
    assert wanted <= {p for _, p in socks}
    assert not {10001, 52365, 6380, 4200, 9444} & {p for _, p in socks}   # no default port taken

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
    assert not list((stack_home / "user").rglob("*"))          # nothing was read from or written to $HOME
