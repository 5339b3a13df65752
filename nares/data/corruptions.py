"""CIFAR-10-C: one memory-mapped `.npy` per corruption, read one (corruption, severity) cell at a time."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from nares.constants import CORRUPTIONS, SEVERITIES
from nares.data import paths
from nares.data.images import ImageSet
from nares.data.readers import read_corruption
from nares.errors import DataError


def corruptions_folder(root: Path | None = None) -> Path:
    return paths.resolve_root(root) / paths.CIFAR10C_DIR


def corruptions_available(root: Path | None = None) -> bool:
    """True when all 19 `<corruption>.npy` files and `labels.npy` are present."""
    folder = corruptions_folder(root)
    return all((folder / f"{name}.npy").is_file() for name in (*CORRUPTIONS, "labels"))


def iter_corruptions(
    root: Path | None = None,
    *,
    names: Iterable[str] = CORRUPTIONS,
    severities: Iterable[int] = SEVERITIES,
    limit: int | None = None,
) -> Iterator[tuple[str, int, ImageSet]]:
    """Yield (corruption, severity, images) for each cell; only the cell's rows (first `limit`) are read."""
    folder = corruptions_folder(root)
    names, severities = tuple(names), tuple(severities)
    for name in names:
        if name not in CORRUPTIONS:
            raise DataError(f"corruption {name!r} is not one of the 19 CIFAR-10-C corruptions")
    for s in severities:
        if s not in SEVERITIES:
            raise DataError(f"severity {s!r} is not one of {', '.join(map(str, SEVERITIES))}")
    for name in names:
        if not (folder / f"{name}.npy").is_file():
            raise DataError(f"{folder / f'{name}.npy'} is missing; `nares data fetch cifar10-c` downloads CIFAR-10-C")
        x, y = read_corruption(folder, name)
        per = len(x) // len(SEVERITIES)
        if limit is not None and not 0 < limit <= per:
            raise DataError(f"corruption limit {limit} is outside 1..{per}")
        n = per if limit is None else limit
        for s in severities:
            lo = per * (s - 1)
            yield name, s, ImageSet.from_hwc(x[lo:lo + n], y[lo:lo + n], f"cifar10-c/{name}/{s}")
