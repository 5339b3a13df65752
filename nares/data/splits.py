"""Train / validation / test splits as named by a preset's `data` section of params.yaml.

Holdout rule (val: holdout): the `val_holdout` training indices with the smallest 64-bit BLAKE2b
digest of the text "<seed>:<index>" are held out (then listed in ascending order) and removed from
train. The rule depends on nothing but (seed, index), so it never changes with library versions.
It is applied to the whole training source before `train_limit`, so `train_limit` is the exact
number of training images kept and the held-out images do not depend on it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from nares.data import paths
from nares.data.images import ImageSet
from nares.data.readers import read_cifar10_python, read_cifar101, read_npz_subset
from nares.errors import ConfigError, DataError

TRAIN_SOURCES = ("cifar10", "cifar10-subset")
VAL_SOURCES = ("cifar10.1", "holdout")
TEST_SOURCES = ("cifar10", "cifar10-subset")


class Splits(NamedTuple):
    """The three sets of a preset (iterable as train, val, test)."""

    train: ImageSet
    val: ImageSet
    test: ImageSet

    def to(self, device: torch.device | str) -> Splits:
        return Splits(*(s.to(device) for s in self))


def holdout_indices(n: int, count: int, seed: int) -> np.ndarray:
    """The `count` indices of range(n) held out for validation (module docstring), ascending."""
    if not 0 < count < n:
        raise ConfigError(f"data.val_holdout {count} must be between 1 and {n - 1} (the training set has {n})")
    keys = np.fromiter(
        (int.from_bytes(hashlib.blake2b(f"{seed}:{i}".encode(), digest_size=8).digest(), "big") for i in range(n)),
        dtype=np.uint64, count=n,
    )
    return np.sort(np.argsort(keys, kind="stable")[:count])


def cifar10_location(root: Path) -> Path:
    """The extracted `cifar-10-batches-py/` if present, else the tarball; DataError when neither is there."""
    folder = root / paths.CIFAR10_DIR
    for candidate in (folder / paths.CIFAR10_BATCHES_DIR, folder / paths.CIFAR10_TARBALL):
        if candidate.exists():
            return candidate
    raise DataError(f"{folder / paths.CIFAR10_TARBALL} is missing (nor is {paths.CIFAR10_BATCHES_DIR}/ there); "
                    "`nares data fetch cifar10` downloads it")


def subset_location(root: Path) -> Path:
    path = root / paths.CIFAR10_DIR / paths.CIFAR10_SUBSET
    if not path.is_file():
        raise DataError(f"{path} is missing: the offline CIFAR-10 subset cannot be downloaded; point NARES_DATA_DIR "
                        "at the folder holding cifar10/cifar10_prefix_subset.npz, or use the full set "
                        "(`nares data fetch cifar10`)")
    return path


class _Reader:
    """Reads each source file at most once per `load_splits` call."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._subset: dict[str, tuple[np.ndarray, np.ndarray]] | None = None

    def split(self, source: str, split: str) -> tuple[np.ndarray, np.ndarray]:
        if source == "cifar10":
            return read_cifar10_python(cifar10_location(self.root), split)
        if self._subset is None:
            self._subset = read_npz_subset(subset_location(self.root))
        return self._subset[split]


def _choice(cfg: dict[str, Any], key: str, allowed: tuple[str, ...]) -> str:
    value = cfg.get(key)
    if value not in allowed:
        raise ConfigError(f"data.{key} {value!r} is not one of {', '.join(allowed)}")
    return value


def _limit(cfg: dict[str, Any], key: str, n: int) -> int | None:
    value = cfg.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= n:
        raise ConfigError(f"data.{key} {value!r} must be null or an integer in 1..{n}")
    return value


def load_splits(data_cfg: dict[str, Any], root: Path | None = None, *, seed: int = 0) -> Splits:
    """The preset's train/val/test sets (CPU tensors); `seed` chooses the holdout when val is "holdout"."""
    root = paths.resolve_root(root)
    train_src = _choice(data_cfg, "train", TRAIN_SOURCES)
    val_src = _choice(data_cfg, "val", VAL_SOURCES)
    test_src = _choice(data_cfg, "test", TEST_SOURCES)
    reader = _Reader(root)

    x, y = reader.split(train_src, "train")
    train = ImageSet.from_hwc(x, y, f"{train_src}/train")
    if val_src == "holdout":
        count = data_cfg.get("val_holdout")
        if isinstance(count, bool) or not isinstance(count, int):
            raise ConfigError(f"data.val_holdout {count!r} must be an integer when data.val is 'holdout'")
        held = holdout_indices(len(train), count, seed)
        keep = np.setdiff1d(np.arange(len(train)), held, assume_unique=True)
        val = train.take(held, f"{train_src}/holdout(seed={seed})")
        train = train.take(keep)
    else:
        x, y = read_cifar101(root / paths.CIFAR101_DIR)
        val = ImageSet.from_hwc(x, y, "cifar10.1")
    x, y = reader.split(test_src, "test")
    test = ImageSet.from_hwc(x, y, f"{test_src}/test")
    return Splits(
        train=train.head(_limit(data_cfg, "train_limit", len(train))),
        val=val.head(_limit(data_cfg, "val_limit", len(val))),
        test=test.head(_limit(data_cfg, "test_limit", len(test))),
    )
