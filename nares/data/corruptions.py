"""CIFAR-10-C: one memory-mapped `.npy` per corruption, read one (corruption, severity) cell at a time."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from nares.constants import CORRUPTIONS, SEVERITIES
from nares.data import paths
from nares.data.images import ImageSet
from nares.data.readers import read_corruption, read_corruption_labels
from nares.errors import DataError


def corruptions_folder(root: Path | None = None) -> Path:
    return paths.resolve_root(root) / paths.CIFAR10C_DIR


def corruptions_available(root: Path | None = None) -> bool:
    """True when all 19 `<corruption>.npy` files and `labels.npy` are present."""
    folder = corruptions_folder(root)
    return all((folder / f"{name}.npy").is_file() for name in (*CORRUPTIONS, "labels"))


def open_corruptions(root: Path | None = None, names: Iterable[str] = CORRUPTIONS) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{name: (memory-mapped images, labels)} for `names`, each file checked (header, size, labels) before any is used."""
    folder = corruptions_folder(root)
    names = tuple(names)
    for name in names:
        if name not in CORRUPTIONS:
            raise DataError(f"corruption {name!r} is not one of the 19 CIFAR-10-C corruptions")
    for name in names:
        if not (folder / f"{name}.npy").is_file():
            raise DataError(f"{folder / f'{name}.npy'} is missing; `nares data fetch cifar10-c` downloads CIFAR-10-C")
    if not (folder / paths.CIFAR10C_LABELS).is_file():
        raise DataError(f"{folder / paths.CIFAR10C_LABELS} is missing; `nares data fetch cifar10-c` downloads CIFAR-10-C")
    labels = read_corruption_labels(folder)
    return {name: read_corruption(folder, name, labels) for name in names}


def check_corruptions(root: Path | None = None) -> None:
    """When CIFAR-10-C is present, check every file of it (cheaply: headers, sizes, labels); DataError if one is bad."""
    if corruptions_available(root):
        open_corruptions(root)


def iter_corruptions(
    root: Path | None = None,
    *,
    names: Iterable[str] = CORRUPTIONS,
    severities: Iterable[int] = SEVERITIES,
    limit: int | None = None,
) -> Iterator[tuple[str, int, ImageSet]]:
    """Yield (corruption, severity, images) for each cell; only the cell's rows (first `limit`) are read.

    Every file is checked before the first cell is yielded, so a bad one fails before any work.
    """
    severities = tuple(severities)
    for s in severities:
        if s not in SEVERITIES:
            raise DataError(f"severity {s!r} is not one of {', '.join(map(str, SEVERITIES))}")
    arrays = open_corruptions(root, names)
    per = len(next(iter(arrays.values()))[1]) // len(SEVERITIES) if arrays else 0  # all share labels.npy
    if arrays and limit is not None and not 0 < limit <= per:
        raise DataError(f"corruption limit {limit} is outside 1..{per}")
    n = per if limit is None else limit
    for name, (x, y) in arrays.items():
        for s in severities:
            lo = per * (s - 1)
            yield name, s, ImageSet.from_hwc(x[lo:lo + n], y[lo:lo + n], f"cifar10-c/{name}/{s}")
