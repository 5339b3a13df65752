"""Connecting to Ray: an existing cluster through `RAY_ADDRESS`, else a local one started here; and Ray's
environment settings (`QUIET_ENV`, `ray_temp_dir`), which the stack (`factory.stack`) applies too.

Local clusters listen on loopback only, send no usage statistics and keep their files under `$NARES_HOME`.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from nares.environment import environment
from nares.store.settings import nares_home

QUIET_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",   # every Ray listener on 127.0.0.1
    "RAY_USAGE_STATS_ENABLED": "0",
    "http_proxy": "http://127.0.0.1:9",          # Ray's usage-stats code probes a cloud-metadata address anyway
    "no_proxy": "localhost,127.0.0.1,::1",
    "RAY_gcs_server_port_wait_time_s": "120",    # Ray's 30 s for the GCS to come up is too short on a busy 2-core box
}


def ray_temp_dir() -> Path:
    """`$NARES_HOME/ray`, or a short folder in the system temp dir when that path is too long for the
    Unix sockets Ray puts under it (107 bytes)."""
    path = nares_home() / "ray"
    if len(str(path)) > 40:
        digest = hashlib.sha256(str(path).encode()).hexdigest()[:8]
        base = Path(tempfile.gettempdir())
        if len(str(base)) > 20 and os.access("/tmp", os.W_OK):
            base = Path("/tmp")  # a long TMPDIR leaves no room for Ray's session and socket names
        path = base / f"nares-ray-{os.getuid()}-{digest}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def quiet_env() -> None:
    """Set the loopback / no-telemetry variables (kept where the user already set them)."""
    for k, v in QUIET_ENV.items():
        os.environ.setdefault(k, v)


def connect(num_cpus: int | None = None) -> bool:
    """Attach to `RAY_ADDRESS` if set, else start a local cluster. True when a local cluster was started
    (the caller shuts it down)."""
    import ray

    quiet_env()
    if ray.is_initialized():
        return False
    address = environment().ray_address
    if address:
        ray.init(address=address, log_to_driver=False)
        return False
    ray.init(num_cpus=num_cpus, include_dashboard=False, _temp_dir=str(ray_temp_dir()), log_to_driver=False)
    return True


def shutdown(started_here: bool) -> None:
    import ray

    if started_here and ray.is_initialized():
        ray.shutdown()
