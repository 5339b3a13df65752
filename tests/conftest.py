"""Shared test fixtures: where the real data lives, and small helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True, scope="session")
def _own_nares_home(tmp_path_factory):
    """Every test session gets an empty `$NARES_HOME` of its own (tests that need one set theirs): what a user
    generated or ran under the repository's default home (`var/`, e.g. a CIFAR-10-C set) never leaks in."""
    if "NARES_HOME" in os.environ:
        yield
        return
    os.environ["NARES_HOME"] = str(tmp_path_factory.mktemp("nares-home"))
    try:
        yield
    finally:
        os.environ.pop("NARES_HOME", None)


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
