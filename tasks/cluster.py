"""Connecting to Ray: an existing cluster through `RAY_ADDRESS`, else a local one started here.

Local clusters listen on loopback only, send no usage statistics and keep their files under `$NARES_HOME`.
"""

from __future__ import annotations

import os

from nares.sweep.paths import QUIET_ENV, ray_temp_dir


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
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False)
        return False
    ray.init(num_cpus=num_cpus, include_dashboard=False, _temp_dir=str(ray_temp_dir()), log_to_driver=False)
    return True


def shutdown(started_here: bool) -> None:
    import ray

    if started_here and ray.is_initialized():
        ray.shutdown()
