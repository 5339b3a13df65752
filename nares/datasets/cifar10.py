"""CIFAR-10 (train; validation CIFAR-10.1 v6 or a hold-out; test; CIFAR-10-C), read by `nares.data`."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from nares.constants import CORRUPTIONS
from nares.datasets.base import DataSet


class CIFAR10(DataSet):
    name = "cifar10"
    num_classes = 10
    image_shape = (3, 32, 32)
    corruptions = CORRUPTIONS

    def load(self, data_cfg: Mapping[str, Any], root: Path | None = None, *, seed: int = 0) -> Any:
        from nares.data import load_splits

        return load_splits(dict(data_cfg), root, seed=seed)

    def iter_corruptions(self, *, severities, limit: int | None = None) -> Iterator[tuple[str, int, Any]]:
        from nares.data import iter_corruptions

        return iter_corruptions(severities=severities, limit=limit)


DATASET = CIFAR10()
