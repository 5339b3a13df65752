"""The embedded stack's settings without starting it: ports from the environment (checked, distinct, free
sets for CI), the Ray token file, and a service that dies while starting reported at once with its log."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time

import pytest

from factory import stack
from nares.errors import ConfigError


def test_default_ports_and_ray_flags():
    ports = stack.Ports.from_env({})
    assert (ports.s3, ports.prefect, ports.ray, ports.ray_client) == (9444, 4200, 6380, 10001)
    assert ports.ray_workers == (10002, 19999)
    flags = ports.ray_flags()
    assert flags[flags.index("--port") + 1] == "6380"
    assert flags[flags.index("--ray-client-server-port") + 1] == "10001"
    assert flags[-4:] == ["--min-worker-port", "10002", "--max-worker-port", "19999"]
    assert "--node-manager-port" not in flags                  # 0: Ray lets the OS pick a free port


def test_every_port_is_settable():
    env = {var: str(20000 + i) for i, (var, _, _) in enumerate(stack.PORTS.values())}
    env[stack.WORKER_PORTS_VAR] = "30000-30099"
    ports = stack.Ports.from_env(env)
    assert ports.env() == env                                  # stack.env round-trips every setting
    flags = ports.ray_flags()
    for f, (var, _, flag) in stack.PORTS.items():
        if flag:
            assert flags[flags.index(flag) + 1] == env[var], f
    assert flags[-4:] == ["--min-worker-port", "30000", "--max-worker-port", "30099"]


@pytest.mark.parametrize(("env", "needle"), [
    ({"NARES_RAY_PORT": "abc"}, "NARES_RAY_PORT is 'abc'; expected a port, an integer in 1..65535"),
    ({"NARES_PREFECT_PORT": "0"}, "NARES_PREFECT_PORT is '0'"),
    ({"NARES_S3_PORT": "70000"}, "NARES_S3_PORT is '70000'"),
    ({"NARES_RAY_METRICS_PORT": "-1"}, "NARES_RAY_METRICS_PORT is '-1'; expected a port, an integer in 0..65535"),
    ({"NARES_RAY_WORKER_PORTS": "20000"}, "NARES_RAY_WORKER_PORTS is '20000'; expected MIN-MAX"),
    ({"NARES_RAY_WORKER_PORTS": "30000-20000"}, "NARES_RAY_WORKER_PORTS is '30000-20000'"),
    ({"NARES_PREFECT_PORT": "6380"}, "NARES_PREFECT_PORT and NARES_RAY_PORT are both 6380"),
    ({"NARES_RAY_CLIENT_PORT": "10005"}, "NARES_RAY_CLIENT_PORT is 10005, inside NARES_RAY_WORKER_PORTS 10002-19999"),
])
def test_bad_port_settings_are_one_line(env, needle):
    with pytest.raises(ConfigError) as e:
        stack.Ports.from_env(env)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_free_port_env_is_free_distinct_and_loopback():
    env = stack.free_port_env(n_worker_ports=50)
    ports = stack.Ports.from_env(env)                          # valid and distinct, checked by from_env
    fixed = [getattr(ports, f) for f, (_, default, _) in stack.PORTS.items() if default]
    assert len(set(fixed)) == len(fixed) and all(stack._bindable(p) for p in fixed)
    lo, hi = ports.ray_workers
    assert hi - lo + 1 == 50 and 20000 <= lo < hi < 32768
    assert all(stack._bindable(p) for p in range(lo, hi + 1))


def test_stack_up_refuses_a_bad_port_before_starting_anything(tmp_path, monkeypatch):
    monkeypatch.setenv("NARES_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NARES_RAY_PORT", "63.8")
    r = subprocess.run([sys.executable, "-m", "factory.cli", "stack", "up"], capture_output=True, text=True,
                       env={**os.environ})
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip() == ("nares: error: environment variable NARES_RAY_PORT is '63.8'; "
                                "expected a port, an integer in 1..65535")
    assert not (tmp_path / "home" / "auth").exists()            # nothing was started or written


def test_ray_token_created_once_private_and_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("NARES_HOME", str(tmp_path / "home"))
    path = stack.ensure_ray_token()
    assert path == tmp_path / "home" / "auth" / "ray-token"
    token = path.read_text()
    assert len(token) == 64 and int(token, 16) >= 0             # 256 random bits, hex
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stack.ensure_ray_token() == path and path.read_text() == token   # kept on the next `up`
    path.chmod(0o644)
    stack.ensure_ray_token()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600           # loosened permissions are tightened again
    path.write_text("")
    assert len(stack.ensure_ray_token().read_text()) == 64      # an empty file is replaced
    env = stack.stack_env(stack.Ports.from_env({}))
    assert env["RAY_AUTH_TOKEN_PATH"] == str(path) and env["RAY_AUTH_MODE"] == "token"
    assert path.read_text() not in "".join(env.values())        # the path is handed out, never the token
    assert [p.name for p in path.parent.iterdir()] == ["ray-token"]   # no temporary file left


def test_a_service_that_dies_while_starting_is_reported_at_once(tmp_path, monkeypatch):
    monkeypatch.setenv("NARES_HOME", str(tmp_path / "home"))
    script = "echo starting; echo 'fatal: no token found' >&2; exit 3"
    t0 = time.monotonic()
    s = stack._spawn("svc", "the test service", ["sh", "-c", script], {})
    with pytest.raises(stack.StackError) as e:
        stack._wait(s, lambda: False, timeout=120)
    assert time.monotonic() - t0 < 10                           # not after the 120 s timeout
    msg = str(e.value)
    assert msg.startswith("the test service exited with status 3 while starting; "
                          "last lines: starting | fatal: no token found (log: ")
    assert "\n" not in msg and "within" not in msg
    assert stack.service_pid("svc") is None and not (tmp_path / "home" / "pids" / "svc.pid").exists()


def test_the_log_tail_quotes_only_this_start(tmp_path, monkeypatch):
    monkeypatch.setenv("NARES_HOME", str(tmp_path / "home"))
    (tmp_path / "home" / "logs").mkdir(parents=True)
    (tmp_path / "home" / "logs" / "svc.log").write_text("an old run's error\n")
    s = stack._spawn("svc", "the test service", ["sh", "-c", "exit 1"], {})
    with pytest.raises(stack.StackError, match=r"status 1 while starting; its log is empty"):
        stack._wait(s, lambda: False, timeout=30)


def test_a_service_not_ready_in_time_is_stopped(tmp_path, monkeypatch):
    monkeypatch.setenv("NARES_HOME", str(tmp_path / "home"))
    s = stack._spawn("svc", "the test service", ["sh", "-c", "echo waiting; exec sleep 60"], {})
    with pytest.raises(stack.StackError, match=r"did not become ready within 1 s and was stopped; last lines: waiting"):
        stack._wait(s, lambda: False, timeout=1)
    s.proc.wait(timeout=15)
    assert stack.service_pid("svc") is None


@pytest.mark.services
def test_a_ray_head_without_its_token_is_reported_dead_with_ray_s_reason(tmp_path, monkeypatch):
    """What a fresh machine used to show as a 120 s timeout: `ray start --head` refusing at once."""
    from tests.test_stack_up import clean_stack_env

    clean_stack_env(tmp_path, monkeypatch)
    ports = stack.Ports.from_env()
    env = {**stack.stack_env(ports), "RAY_AUTH_TOKEN_PATH": str(tmp_path / "no-such-token")}
    t0 = time.monotonic()
    with pytest.raises(stack.StackError) as e:
        stack.start_ray(env, ports, num_cpus=1)
    assert time.monotonic() - t0 < 60
    msg = str(e.value)
    assert msg.startswith("the Ray head exited with status 1 while starting; last lines: ") and "\n" not in msg
    assert "token" in msg.lower() and "within" not in msg
    assert stack.service_pid("ray-head") is None


@pytest.mark.services
def test_an_s3_server_that_dies_while_starting_is_reported_with_its_log(tmp_path):
    import socket

    from factory.local_s3 import LocalS3Server, ServerError

    with socket.socket() as taken:                              # a listener that is not an HTTP server
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = LocalS3Server(tmp_path / "s3", taken.getsockname()[1])
        with pytest.raises(ServerError) as e:
            server.start(timeout=30)
    msg = str(e.value)
    assert msg.startswith("the S3 server exited with status 1 while starting; last lines: ") and "\n" not in msg
    assert "EADDRINUSE" in msg and server.pid() is None


def test_run_sets_are_the_presets_and_seeds_this_home_has_runs_of(tmp_path, monkeypatch):
    from nares.sweep.paths import run_sets

    monkeypatch.setenv("NARES_HOME", str(tmp_path))
    assert run_sets() == []                                     # no runs folder yet
    for name in ("tiny-seed0", "tiny-seed3", "full-seed12", "my-preset-seed1", "notes", "tiny-seedx"):
        (tmp_path / "runs" / name).mkdir(parents=True)
    (tmp_path / "runs" / "tiny-seed9").write_text("a file, not a runs folder")
    assert run_sets() == [("full", 12), ("my-preset", 1), ("tiny", 0), ("tiny", 3)]
