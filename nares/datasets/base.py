"""The data-set interface: what a data set the factory trains and evaluates on owns."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar


class DataSet(ABC):
    """A data set: `name` (the value of every record's and row's `dataset`), `num_classes`, `image_shape`
    (C, H, W), `splits` (names of the splits `load` returns), `corruptions` (the corruption set's names,
    empty for none), `load(data_cfg, root, seed)` (train/val/test) and `iter_corruptions(...)`."""

    name: ClassVar[str]
    num_classes: ClassVar[int]
    image_shape: ClassVar[tuple[int, int, int]]
    splits: ClassVar[tuple[str, ...]] = ("train", "val", "test")
    corruptions: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def load(self, data_cfg: Mapping[str, Any], root: Path | None = None, *, seed: int = 0) -> Any:
        """The preset's splits (an object with one attribute per split name)."""

    def iter_corruptions(self, *, severities, limit: int | None = None) -> Iterator[tuple[str, int, Any]]:
        """(corruption, severity, images) of the corruption set; none by default."""
        return iter(())
