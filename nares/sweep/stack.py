"""The embedded stack on one machine: local S3 server, Prefect server (SQLite), a Ray head, and a Prefect
process worker serving the deployments of `prefect.yaml`.

Every service runs as its own process group started here; its PID, log and data live under `$NARES_HOME`
(`pids/`, `logs/`, `prefect/`, `ray/`). `stack.env` there holds the variables a shell needs to talk to the
stack (`source var/stack.env; prefect deployment run nares/full-sweep`). Stopping goes worker → Prefect
server → Ray → S3 (a worker outliving its server hangs), each by its recorded PID only.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from nares.config import REPO_ROOT
from nares.errors import NaresError
from nares.procs import pid_alive, read_pid, terminate
from nares.store import local_server
from nares.sweep.paths import QUIET_ENV, nares_home, ray_temp_dir

WORK_POOL = "nares"
BIN = Path(sys.executable).parent


class StackError(NaresError):
    """A stack service that would not start, or a stack command that cannot run."""


@dataclass(frozen=True)
class Ports:
    prefect: int = 4200
    ray: int = 6380

    @classmethod
    def from_env(cls) -> Ports:
        return cls(int(os.environ.get("NARES_PREFECT_PORT", 4200)), int(os.environ.get("NARES_RAY_PORT", 6380)))


def _dirs() -> dict[str, Path]:
    home = nares_home()
    out = {"home": home, "pids": home / "pids", "logs": home / "logs", "prefect": home / "prefect"}
    for p in out.values():
        p.mkdir(parents=True, exist_ok=True)
    return out


def stack_env(ports: Ports | None = None) -> dict[str, str]:
    """The variables every stack process (and a user's shell) needs."""
    ports = ports or Ports.from_env()
    d = _dirs()
    return {
        **QUIET_ENV,
        "NARES_HOME": str(d["home"]),
        "NARES_REPO": str(REPO_ROOT),
        "PREFECT_HOME": str(d["prefect"]),
        "PREFECT_API_URL": f"http://127.0.0.1:{ports.prefect}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_WORKER_QUERY_SECONDS": "2",
        "PREFECT_RUNNER_POLL_FREQUENCY": "2",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        "DO_NOT_TRACK": "1",
        "DVC_NO_ANALYTICS": "1",
        "GX_ANALYTICS_ENABLED": "false",
        "RAY_ADDRESS": f"127.0.0.1:{ports.ray}",
        "RAY_AUTH_MODE": "token",
        "RAY_TMPDIR": str(ray_temp_dir()),
    }


def _apply_env(env: dict[str, str]) -> dict[str, str]:
    full = {**os.environ, **env}
    full["PATH"] = f"{BIN}{os.pathsep}{full.get('PATH', '')}"
    return full


def _pid_file(name: str) -> Path:
    return _dirs()["pids"] / f"{name}.pid"


def service_pid(name: str) -> int | None:
    """The PID of a running service started by this stack, else None."""
    pid = read_pid(_pid_file(name))
    return pid if pid is not None and pid_alive(pid) else None


def _spawn(name: str, argv: list[str], env: dict[str, str]) -> int:
    log = open(_dirs()["logs"] / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child process
    proc = subprocess.Popen(argv, cwd=REPO_ROOT, env=_apply_env(env), stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()
    _pid_file(name).write_text(f"{proc.pid}\n")
    return proc.pid


def _wait(what: str, ok, timeout: float, pid: int | None = None, log: str | None = None) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if ok():
            return
        if pid is not None and not pid_alive(pid):
            break
        time.sleep(0.5)
    where = f"; see {_dirs()['logs'] / log}" if log else ""
    raise StackError(f"{what} did not become ready within {timeout:.0f} s{where}")


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def stop_service(name: str, grace_s: float = 15.0) -> bool:
    """SIGTERM the service's process group, SIGKILL it after `grace_s`; True if something was stopped."""
    pid = service_pid(name)
    _pid_file(name).unlink(missing_ok=True)
    if pid is None:
        return False
    terminate(pid, grace_s, group=True, kill_wait_s=10.0)
    return True


def start_prefect(env: dict[str, str], ports: Ports) -> None:
    if service_pid("prefect-server"):
        return
    pid = _spawn("prefect-server", [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1",
                                    "--port", str(ports.prefect)], env)
    _wait("the Prefect server", lambda: _http_ok(f"http://127.0.0.1:{ports.prefect}/api/health"), 180, pid,
          "prefect-server.log")


def start_ray(env: dict[str, str], ports: Ports, num_cpus: int | None) -> None:
    if service_pid("ray-head"):
        return
    argv = [str(BIN / "ray"), "start", "--head", "--block", "--port", str(ports.ray),
            "--node-ip-address", "127.0.0.1", "--include-dashboard", "false", "--disable-usage-stats",
            "--temp-dir", env["RAY_TMPDIR"]]
    if num_cpus:
        argv += ["--num-cpus", str(num_cpus)]
    pid = _spawn("ray-head", argv, env)
    _wait("the Ray head", lambda: _port_open(ports.ray), 120, pid, "ray-head.log")


def deploy(env: dict[str, str]) -> None:
    """Create the process work pool (if missing) and register the deployments of prefect.yaml."""
    full = _apply_env(env)
    prefect = str(BIN / "prefect")
    probe = subprocess.run([prefect, "work-pool", "inspect", WORK_POOL], env=full, cwd=REPO_ROOT,
                           capture_output=True, text=True)
    if probe.returncode != 0:
        _run([prefect, "work-pool", "create", WORK_POOL, "--type", "process"], full, "create the work pool")
    _run([prefect, "--no-prompt", "deploy", "--all"], full, "register the deployments of prefect.yaml")


def _run(argv: list[str], env: dict[str, str], what: str) -> None:
    r = subprocess.run(argv, env=env, cwd=REPO_ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["no output"]
        raise StackError(f"could not {what}: {tail[0]}")


def start_worker(env: dict[str, str]) -> None:
    if service_pid("prefect-worker"):
        return
    _spawn("prefect-worker", [str(BIN / "prefect"), "worker", "start", "--pool", WORK_POOL, "--type", "process"],
           env)


def write_env_file(env: dict[str, str]) -> Path:
    from nares.io import atomic_write

    path = nares_home() / "stack.env"
    with atomic_write(path, "w") as fh:
        fh.write("# source this file to talk to the embedded stack\n")
        fh.writelines(f"export {k}={v!r}\n".replace("'", '"') for k, v in sorted(env.items()))
    return path


def up(*, num_cpus: int | None = None, with_s3: bool = True, with_worker: bool = True) -> dict:
    """Start (or find running) every service; idempotent. Returns the status."""
    ports = Ports.from_env()
    env = stack_env(ports)
    os.environ.update(env)
    if with_s3:
        local_server.start()
    start_prefect(env, ports)
    start_ray(env, ports, num_cpus)
    if with_worker:
        deploy(env)
        start_worker(env)
    write_env_file(env)
    return status()


def down() -> dict[str, bool]:
    """Stop every service in the safe order; returns which ones were running."""
    out = {name: stop_service(name, grace) for name, grace in
           (("prefect-worker", 10.0), ("prefect-server", 20.0), ("ray-head", 20.0))}
    out["s3"] = bool(local_server.stop())
    return out


def status() -> dict:
    ports = Ports.from_env()
    out = {name: service_pid(name) for name in ("prefect-server", "ray-head", "prefect-worker")}
    out["ui"] = f"http://127.0.0.1:{ports.prefect}"
    out["ray_address"] = f"127.0.0.1:{ports.ray}"
    out["env_file"] = str(nares_home() / "stack.env")
    out["s3"] = local_server.status()
    return out


def client_env() -> dict[str, str]:
    """Prefect/Ray settings for a command run by hand: the running stack's when it is up, else an ephemeral
    Prefect with its home under `$NARES_HOME` and a local Ray cluster started by the flow."""
    if service_pid("prefect-server"):
        env = stack_env()
        if not service_pid("ray-head"):
            env.pop("RAY_ADDRESS")
        return env
    return {**QUIET_ENV, "NARES_HOME": str(nares_home()), "PREFECT_HOME": str(_dirs()["prefect"]),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120"}


def use_client_env() -> dict[str, str]:
    """Apply `client_env()` to this process (values the user set explicitly win)."""
    env = client_env()
    for k, v in env.items():
        os.environ.setdefault(k, v)
    return env
