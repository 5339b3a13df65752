"""Where a sweep keeps its state: everything lives under `$NARES_HOME` (default `<repo>/var`)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from nares.config import REPO_ROOT
from nares.store.settings import nares_home


def runs_root(preset: str, seed: int) -> Path:
    """Run folders (checkpoints, resume state, evaluations) of one preset and seed: one sub-folder per arch."""
    return nares_home() / "runs" / f"{preset}-seed{seed}"


def run_dir(preset: str, seed: int, arch: str) -> Path:
    return runs_root(preset, seed) / arch


def journal_path(preset: str, seed: int) -> Path:
    """The sweep journal of one preset and seed (see `nares.sweep.journal`)."""
    return runs_root(preset, seed) / "journal.jsonl"


def default_tables_root(preset: str, seed: int) -> Path:
    """Internal Parquet tables of one preset and seed: `$NARES_TABLES/<preset>-seed<seed>`, else under the
    repository's `tables/` (DVC-tracked, the layout dvc.yaml uses)."""
    base = Path(os.environ["NARES_TABLES"]) if os.environ.get("NARES_TABLES") else REPO_ROOT / "tables"
    return (base / f"{preset}-seed{seed}").resolve()


QUIET_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",   # every Ray listener on 127.0.0.1
    "RAY_USAGE_STATS_ENABLED": "0",
    "http_proxy": "http://127.0.0.1:9",          # Ray's usage-stats code probes a cloud-metadata address anyway
    "no_proxy": "localhost,127.0.0.1,::1",
}


def ray_temp_dir() -> Path:
    """`$NARES_HOME/ray`, or a short folder in the system temp dir when that path is too long for the
    Unix sockets Ray puts under it (107 bytes)."""
    path = nares_home() / "ray"
    if len(str(path)) > 40:
        digest = hashlib.sha256(str(path).encode()).hexdigest()[:8]
        path = Path(tempfile.gettempdir()) / f"nares-ray-{os.getuid()}-{digest}"
    path.mkdir(parents=True, exist_ok=True)
    return path
