"""The embedded stack on one machine: local S3 server, Prefect server (SQLite), a Ray head, and a Prefect
process worker serving the deployments of `prefect.yaml`.

Every service runs as its own process group started here; its PID, log and data live under `$NARES_HOME`
(`pids/`, `logs/`, `prefect/`, `ray/`). `stack.env` there holds the variables a shell needs to talk to the
stack (`source var/stack.env; prefect deployment run nares/full-sweep`). Stopping goes worker → Prefect
server → Ray → S3 (a worker outliving its server hangs), each by its recorded PID only.

Ray keeps token authentication: the first `up` writes a random token to `$NARES_HOME/auth/ray-token` (mode
0600, folder 0700) and every process started here, and `stack.env`, get its path (`RAY_AUTH_TOKEN_PATH`),
never the token. Nothing under `$HOME` is read. Every listener is on 127.0.0.1, on the ports of `PORTS`
(each set by its variable, so a second stack or CI runs on free ports; `free_port_env()` picks a set).
"""

from __future__ import annotations

import os
import random
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from factory import local_s3
from factory.procs import log_tail, pid_alive, read_pid, terminate
from nares.config import REPO_ROOT
from nares.environment import environment
from nares.errors import NaresError
from nares.ports import PORTS, WORKER_PORTS_VAR, Ports
from nares.store.settings import nares_home
from tasks.cluster import QUIET_ENV, ray_temp_dir

WORK_POOL = "nares"
BIN = Path(sys.executable).parent
ADDRESS = "127.0.0.1"


class StackError(NaresError):
    """A stack service that would not start, or a stack command that cannot run."""


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((ADDRESS, port))
        except OSError:
            return False
    return True


def free_port_env(n_worker_ports: int = 200) -> dict[str, str]:
    """Variables that put a stack on ports free now: one for each service with a fixed default port, and a
    free range of `n_worker_ports` for Ray's workers (below Linux's ephemeral range, 32768+)."""
    held: list[socket.socket] = []
    try:
        chosen = {}
        for f in PORTS:
            if PORTS[f][1]:
                s = socket.socket()
                s.bind((ADDRESS, 0))
                held.append(s)
                chosen[f] = s.getsockname()[1]
        taken = set(chosen.values())
        for _ in range(200):
            lo = random.randrange(20000, 32768 - n_worker_ports)
            span = range(lo, lo + n_worker_ports)
            if not taken.intersection(span) and all(_bindable(p) for p in span):
                env = {PORTS[f][0]: str(port) for f, port in chosen.items()}
                return Ports.from_env({**env, WORKER_PORTS_VAR: f"{lo}-{span[-1]}"}).env()
        raise StackError(f"found no {n_worker_ports} free consecutive ports for Ray's workers in 20000-32767")
    finally:
        for s in held:
            s.close()


def _dirs() -> dict[str, Path]:
    home = nares_home()
    out = {"home": home, "pids": home / "pids", "logs": home / "logs", "prefect": home / "prefect"}
    for p in out.values():
        p.mkdir(parents=True, exist_ok=True)
    return out


def ray_token_path() -> Path:
    """Where the stack keeps its Ray authentication token: `$NARES_HOME/auth/ray-token`."""
    return nares_home() / "auth" / "ray-token"


def ensure_ray_token() -> Path:
    """The stack's Ray token file, created on first use: 64 random hex digits, mode 0600 in a 0700 folder,
    written whole or not at all. Its content is never printed or logged."""
    path = ray_token_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    if path.is_file() and path.stat().st_size > 0:
        path.chmod(0o600)
        return path
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def _ray_auth_env() -> dict[str, str]:
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(ray_token_path())}


def _cache_env(home: Path) -> dict[str, str]:
    """Caches the stack's processes would otherwise keep under `$HOME` (or DVC under /var/tmp), moved under
    `$NARES_HOME`; a value the user set is kept."""
    default = {"NARES_CACHE_DIR": home / "cache", "MPLCONFIGDIR": home / "cache" / "matplotlib",
               "DVC_SITE_CACHE_DIR": home / "cache" / "dvc-site"}
    return {k: environment().source.get(k) or str(v) for k, v in default.items()}


def stack_env(ports: Ports | None = None) -> dict[str, str]:
    """The variables every stack process (and a user's shell) needs."""
    ports = ports or environment().ports()
    d = _dirs()
    return {
        **QUIET_ENV,
        **ports.env(),
        **_ray_auth_env(),
        **_cache_env(d["home"]),
        "NARES_HOME": str(d["home"]),
        "NARES_REPO": str(REPO_ROOT),
        "PREFECT_HOME": str(d["prefect"]),
        "PREFECT_API_URL": f"http://{ADDRESS}:{ports.prefect}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_WORKER_QUERY_SECONDS": "2",
        "PREFECT_RUNNER_POLL_FREQUENCY": "2",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        "DO_NOT_TRACK": "1",
        "DVC_NO_ANALYTICS": "1",
        "GX_ANALYTICS_ENABLED": "false",
        "RAY_ADDRESS": f"{ADDRESS}:{ports.ray}",
        "RAY_TMPDIR": str(ray_temp_dir()),
    }


def _apply_env(env: dict[str, str]) -> dict[str, str]:
    full = {**os.environ, **env}
    full.pop("RAY_AUTH_TOKEN", None)       # Ray would prefer it to the stack's token file
    full["PATH"] = f"{BIN}{os.pathsep}{full.get('PATH', '')}"
    return full


def _pid_file(name: str) -> Path:
    return _dirs()["pids"] / f"{name}.pid"


def _log_file(name: str) -> Path:
    return _dirs()["logs"] / f"{name}.log"


def service_pid(name: str) -> int | None:
    """The PID of a running service started by this stack, else None."""
    pid = read_pid(_pid_file(name))
    return pid if pid is not None and pid_alive(pid) else None


@dataclass
class _Started:
    """A service process just started: its Popen, its log and where this start's lines begin in it."""

    name: str
    what: str
    proc: subprocess.Popen
    log: Path
    offset: int


def _spawn(name: str, what: str, argv: list[str], env: dict[str, str]) -> _Started:
    log_path = _log_file(name)
    with open(log_path, "ab") as log:
        offset = log.tell()
        proc = subprocess.Popen(argv, cwd=REPO_ROOT, env=_apply_env(env), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    _pid_file(name).write_text(f"{proc.pid}\n")
    return _Started(name, what, proc, log_path, offset)


def _wait(s: _Started, ok: Callable[[], bool], timeout: float) -> None:
    """Return once `ok()`; a process that exits first is reported at once, as dead, with its last log lines;
    one still not ready after `timeout` is stopped and reported with them too."""
    end = time.monotonic() + timeout
    while True:
        if ok():
            return
        code = s.proc.poll()
        if code is not None:
            _pid_file(s.name).unlink(missing_ok=True)
            terminate(s.proc.pid, 2.0, group=True, kill_wait_s=5.0)   # any child it left behind
            raise StackError(f"{s.what} exited with status {code} while starting; "
                             f"{log_tail(s.log, s.offset)} (log: {s.log})")
        if time.monotonic() >= end:
            stop_service(s.name, 10.0)
            raise StackError(f"{s.what} did not become ready within {timeout:.0f} s and was stopped; "
                             f"{log_tail(s.log, s.offset)} (log: {s.log})")
        time.sleep(0.5)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((ADDRESS, port)) == 0


def _require_free(ports: Ports, names: tuple[str, ...]) -> None:
    """One line naming the variable when a port a service is about to take is in use by another program."""
    for f in names:
        port = getattr(ports, f)
        if port and not _bindable(port):
            raise StackError(f"port {port} on {ADDRESS} ({PORTS[f][0]}) is taken by another program; "
                             f"set {PORTS[f][0]} to a free port")


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
    _require_free(ports, ("prefect",))
    s = _spawn("prefect-server", "the Prefect server", [str(BIN / "prefect"), "server", "start", "--host", ADDRESS,
                                                        "--port", str(ports.prefect)], env)
    _wait(s, lambda: _http_ok(f"http://{ADDRESS}:{ports.prefect}/api/health"), 180)


def start_ray(env: dict[str, str], ports: Ports, num_cpus: int | None) -> None:
    if service_pid("ray-head"):
        return
    _require_free(ports, tuple(f for f in PORTS if f.startswith("ray") and f != "ray_dashboard"))  # no dashboard
    argv = [str(BIN / "ray"), "start", "--head", "--block", "--node-ip-address", ADDRESS,
            "--include-dashboard", "false", "--disable-usage-stats", "--temp-dir", env["RAY_TMPDIR"],
            *ports.ray_flags()]
    if num_cpus:
        argv += ["--num-cpus", str(num_cpus)]
    s = _spawn("ray-head", "the Ray head", argv, env)
    _wait(s, lambda: _port_open(ports.ray), 120)


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


def _worker_online(s: _Started) -> bool:
    """The worker has polled its pool: its log (since this start) says so."""
    try:
        with open(s.log, "rb") as fh:
            fh.seek(s.offset)
            return b"started!" in fh.read()
    except OSError:
        return False


def start_worker(env: dict[str, str]) -> None:
    if service_pid("prefect-worker"):
        return
    s = _spawn("prefect-worker", "the Prefect worker",
               [str(BIN / "prefect"), "worker", "start", "--pool", WORK_POOL, "--type", "process"], env)
    _wait(s, lambda: _worker_online(s), 120)


def write_env_file(env: dict[str, str]) -> Path:
    from nares.io import atomic_write

    path = nares_home() / "stack.env"
    with atomic_write(path, "w") as fh:
        fh.write("# source this file to talk to the embedded stack\n")
        fh.write("unset RAY_AUTH_TOKEN   # Ray reads the stack's token from RAY_AUTH_TOKEN_PATH\n")
        fh.writelines(f"export {k}={v!r}\n".replace("'", '"') for k, v in sorted(env.items()))
    return path


def up(*, num_cpus: int | None = None, with_s3: bool = True, with_worker: bool = True) -> dict:
    """Start (or find running) every service; idempotent. Returns the status."""
    ports = environment().ports()
    ensure_ray_token()
    env = stack_env(ports)
    os.environ.update(env)
    if with_s3:
        local_s3.start()
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
    out["s3"] = bool(local_s3.stop())
    return out


def status() -> dict:
    ports = environment().ports()
    out = {name: service_pid(name) for name in ("prefect-server", "ray-head", "prefect-worker")}
    out["ui"] = f"http://{ADDRESS}:{ports.prefect}"
    out["ray_address"] = f"{ADDRESS}:{ports.ray}"
    out["env_file"] = str(nares_home() / "stack.env")
    out["s3"] = local_s3.status()
    return out


def client_env() -> dict[str, str]:
    """Prefect/Ray settings for a command run by hand: the running stack's when it is up, else an ephemeral
    Prefect with its home under `$NARES_HOME` and a local Ray cluster started by the flow (with the stack's
    token file, so nothing is written under `$HOME`)."""
    if service_pid("prefect-server"):
        env = stack_env()
        if not service_pid("ray-head"):
            env.pop("RAY_ADDRESS")
        return env
    ensure_ray_token()
    return {**QUIET_ENV, **_ray_auth_env(), **_cache_env(nares_home()), "NARES_HOME": str(nares_home()),
            "PREFECT_HOME": str(_dirs()["prefect"]), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1", "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120"}


def use_client_env() -> dict[str, str]:
    """Apply `client_env()` to this process (values the user set explicitly win)."""
    env = client_env()
    for k, v in env.items():
        os.environ.setdefault(k, v)
    return env
