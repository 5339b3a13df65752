"""Shared test fixtures: where the real data lives, and small helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

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


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread for a module: tiny convolutions run fastest so, and two threads stall on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
