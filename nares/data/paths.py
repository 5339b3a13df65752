"""Where the data lives: the data root and the fixed layout of files under it."""

from __future__ import annotations

from pathlib import Path

from nares.environment import environment

CIFAR10_DIR = "cifar10"
CIFAR10_TARBALL = "cifar-10-python.tar.gz"
CIFAR10_BATCHES_DIR = "cifar-10-batches-py"
CIFAR10_SUBSET = "cifar10_prefix_subset.npz"
CIFAR101_DIR = "cifar10.1"
CIFAR101_DATA = "cifar10.1_v6_data.npy"
CIFAR101_LABELS = "cifar10.1_v6_labels.npy"
CIFAR10C_DIR = "cifar10-c"
CIFAR10C_LABELS = "labels.npy"


def data_root() -> Path:
    """`$NARES_DATA_DIR` if set, else `~/.cache/nares/data` (where `nares data fetch` downloads to)."""
    return environment().data_dir


def resolve_root(root: str | Path | None) -> Path:
    return Path(root).expanduser() if root is not None else data_root()
