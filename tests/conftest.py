"""Shared test fixtures: where the real data lives, and small helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The offline data folder (`$NARES_DATA_DIR`, default ../shared/data)."""
    path = Path(os.environ.get("NARES_DATA_DIR", REPO.parent / "shared" / "data"))
    if not (path / "cifar10" / "cifar10_prefix_subset.npz").exists():
        pytest.fail(f"real data not found under {path}; set NARES_DATA_DIR")
    return path


@pytest.fixture(scope="session")
def subset_npz(data_dir: Path) -> Path:
    return data_dir / "cifar10" / "cifar10_prefix_subset.npz"
