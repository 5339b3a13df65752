"""Where a sweep keeps its state: everything lives under `$NARES_HOME` (default `<repo>/var`)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from nares.config import REPO_ROOT
from nares.environment import environment
from nares.store.settings import nares_home


def runs_root(preset: str, seed: int) -> Path:
    """Run folders (checkpoints, resume state, evaluations) of one preset and seed: one sub-folder per arch."""
    return nares_home() / "runs" / f"{preset}-seed{seed}"


SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def run_name(arch: str) -> str:
    """The folder (and object-store key part) of an architecture's run: its string when that is a safe name (the
    WRN `5-10-5-10-5-10`), else the string with every run of other characters made `_`, cut to 80 characters,
    plus 10 hex digits of its sha256 (NB201 `|op~0|+…`, RobNet cell-free `…/…`: no `/`, `|` or `+` in keys)."""
    if SAFE_NAME.fullmatch(arch):
        return arch
    slug = re.sub(r"[^A-Za-z0-9.-]+", "_", arch).strip("_")[:80]
    return f"{slug}-{hashlib.sha256(arch.encode()).hexdigest()[:10]}"


def run_dir(preset: str, seed: int, arch: str) -> Path:
    return runs_root(preset, seed) / run_name(arch)


ALL_PRESETS = "all"   # re-evaluate's preset for: every (preset, seed) in `run_sets()`
RUN_SET = re.compile(r"(?P<preset>[^/]+)-seed(?P<seed>[0-9]+)")


def run_sets() -> list[tuple[str, int]]:
    """Every (preset, seed) with a runs folder under `$NARES_HOME/runs` (what this home produced), sorted."""
    root = nares_home() / "runs"
    found = (RUN_SET.fullmatch(d.name) for d in root.iterdir() if d.is_dir()) if root.is_dir() else ()
    return sorted((m["preset"], int(m["seed"])) for m in found if m)


def journal_path(preset: str, seed: int) -> Path:
    """The sweep journal of one preset and seed (see `nares.sweep.journal`)."""
    return runs_root(preset, seed) / "journal.jsonl"


def default_tables_root(preset: str, seed: int) -> Path:
    """Internal Parquet tables of one preset and seed: `$NARES_TABLES/<preset>-seed<seed>`, else under the
    repository's `tables/` (DVC-tracked, the layout dvc.yaml uses)."""
    base = environment().tables or REPO_ROOT / "tables"
    return (base / f"{preset}-seed{seed}").resolve()
