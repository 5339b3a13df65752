"""Shared by the flow tests: an isolated Prefect/Ray/NARes environment, and this test's own Ray workers."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest


def isolated_flow_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **extra: object) -> Iterator[Path]:
    """Private NARES_HOME, params file (`tmp_path/params.yaml`) and Prefect home; no outside Ray, Prefect or AWS
    settings. `extra` adds variables. Yields `tmp_path`, then removes Ray's session files (kept outside it)."""
    env = {"NARES_HOME": tmp_path / "home", "NARES_PARAMS": tmp_path / "params.yaml", "PREFECT_HOME": tmp_path / "prefect",
           "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": 120, "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "DO_NOT_TRACK": 1, **extra}
    for k, v in env.items():
        monkeypatch.setenv(k, str(v))
    for k in ("RAY_ADDRESS", "PREFECT_API_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(k, raising=False)
    yield tmp_path
    from tasks.cluster import ray_temp_dir

    shutil.rmtree(ray_temp_dir(), ignore_errors=True)


def descendant_pids(root: int) -> set[int]:
    """PIDs of every process below `root` (this test's own Ray workers), from /proc."""
    parent: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parent[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    out, frontier = set(), {root}
    while frontier:
        frontier = {p for p, pp in parent.items() if pp in frontier} - out
        out |= frontier
    return out


def worker_pids(title: str) -> list[int]:
    """PIDs of this test's processes whose command line starts with `title` (e.g. "ray::ArchWorker.run")."""
    pids = []
    for pid in descendant_pids(os.getpid()):
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(title.encode()):
                pids.append(pid)
        except OSError:
            continue
    return sorted(pids)
