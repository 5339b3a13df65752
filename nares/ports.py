"""The ports of the embedded stack's services (local S3, Prefect, Ray), from the environment, checked.

Data only (no sockets, no processes): `nares.environment.Environment.ports()` reads them; the stack that
listens on them is the application's (`factory.stack`). Must not import the app, Prefect or Ray.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

from nares.environment import environment
from nares.errors import ConfigError, shown

# field of `Ports` → (variable, default, `ray start` flag). Default 0: a free port the OS picks at start.
PORTS: dict[str, tuple[str, int, str | None]] = {
    "s3": ("NARES_S3_PORT", 9444, None),
    "prefect": ("NARES_PREFECT_PORT", 4200, None),
    "ray": ("NARES_RAY_PORT", 6380, "--port"),
    "ray_client": ("NARES_RAY_CLIENT_PORT", 10001, "--ray-client-server-port"),
    "ray_dashboard": ("NARES_RAY_DASHBOARD_PORT", 8265, "--dashboard-port"),
    "ray_dashboard_agent": ("NARES_RAY_DASHBOARD_AGENT_PORT", 52365, "--dashboard-agent-listen-port"),
    "ray_dashboard_agent_grpc": ("NARES_RAY_DASHBOARD_AGENT_GRPC_PORT", 0, "--dashboard-agent-grpc-port"),
    "ray_runtime_env_agent": ("NARES_RAY_RUNTIME_ENV_AGENT_PORT", 0, "--runtime-env-agent-port"),
    "ray_metrics": ("NARES_RAY_METRICS_PORT", 0, "--metrics-export-port"),
    "ray_node_manager": ("NARES_RAY_NODE_MANAGER_PORT", 0, "--node-manager-port"),
    "ray_object_manager": ("NARES_RAY_OBJECT_MANAGER_PORT", 0, "--object-manager-port"),
}
WORKER_PORTS_VAR = "NARES_RAY_WORKER_PORTS"
WORKER_PORTS_DEFAULT = (10002, 19999)   # Ray's own default range
FIXED = ("s3", "prefect", "ray")        # ports clients are told; never 0


def _port_value(name: str, raw: str, allow_zero: bool) -> int:
    text = raw.strip()
    low = 0 if allow_zero else 1
    if not (text.isascii() and text.isdigit() and low <= int(text) <= 65535):
        extra = " (0: a free port chosen at start)" if allow_zero else ""
        raise ConfigError(f"environment variable {name} is {shown(raw)}; expected a port, an integer in "
                         f"{low}..65535{extra}")
    return int(text)


def _worker_range(raw: str) -> tuple[int, int]:
    lo, sep, hi = raw.strip().partition("-")
    ok = sep and all(x.isascii() and x.isdigit() for x in (lo, hi)) and 1024 <= int(lo) < int(hi) <= 65535
    if not ok:
        raise ConfigError(f"environment variable {WORKER_PORTS_VAR} is {shown(raw)}; expected MIN-MAX, "
                         "two ports with 1024 <= MIN < MAX <= 65535 (e.g. 10002-19999)")
    return int(lo), int(hi)


@dataclass(frozen=True)
class Ports:
    """Every port the stack listens on (all on 127.0.0.1); see `PORTS` for the variables and defaults."""

    s3: int
    prefect: int
    ray: int
    ray_client: int
    ray_dashboard: int
    ray_dashboard_agent: int
    ray_dashboard_agent_grpc: int
    ray_runtime_env_agent: int
    ray_metrics: int
    ray_node_manager: int
    ray_object_manager: int
    ray_workers: tuple[int, int]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Ports:
        """The ports from the environment, checked: a bad value, or two services on one port, is one line."""
        e = environment().source if env is None else env
        values: dict = {f: _port_value(var, e[var], f not in FIXED) if var in e else default
                        for f, (var, default, _) in PORTS.items()}
        values["ray_workers"] = _worker_range(e[WORKER_PORTS_VAR]) if WORKER_PORTS_VAR in e else WORKER_PORTS_DEFAULT
        ports = cls(**values)
        ports._check_distinct()
        return ports

    def _check_distinct(self) -> None:
        seen: dict[int, str] = {}
        lo, hi = self.ray_workers
        for f, (var, _, _) in PORTS.items():
            port = getattr(self, f)
            if port == 0:
                continue
            if port in seen:
                raise ConfigError(f"environment variables {seen[port]} and {var} are both {port}; "
                                 "every stack service needs a port of its own")
            if lo <= port <= hi:
                raise ConfigError(f"environment variable {var} is {port}, inside {WORKER_PORTS_VAR} {lo}-{hi}; "
                                 "move one of them")
            seen[port] = var

    def env(self) -> dict[str, str]:
        """The variables that select these ports (what `stack.env` exports)."""
        out = {PORTS[f.name][0]: str(getattr(self, f.name)) for f in fields(self) if f.name in PORTS}
        out[WORKER_PORTS_VAR] = "{}-{}".format(*self.ray_workers)
        return out

    def ray_flags(self) -> list[str]:
        flags = [x for f, (_, _, flag) in PORTS.items() if flag and getattr(self, f)
                 for x in (flag, str(getattr(self, f)))]
        lo, hi = self.ray_workers
        return [*flags, "--min-worker-port", str(lo), "--max-worker-port", str(hi)]
