"""CIFAR-10-C: one memory-mapped `.npy` per corruption, read one (corruption, severity) cell at a time.

Which folder is read (`corruptions_folder`): a caller that names a data root reads `<root>/cifar10-c/`
only. With no root (the configured data root, as `nares evaluate` reads it), the data root's `cifar10-c/`
is read when it holds the complete set (19 corruptions and labels.npy); otherwise the CIFAR-10-C generated
by `nares data make-cifar10c` in `$NARES_HOME/data/cifar10-c/`, when that is complete; otherwise the data
root's folder again, whose missing files the errors then name.

A folder holding `manifest.json` is a generated set: before its files are used, each is checked against the
manifest (size and sha256, once per process), so a changed or damaged file is refused in one line.
`corruption_set_info` says which set a folder holds ("official", "generated" with the manifest's identity,
or "absent") for the dataset card.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from nares.constants import CORRUPTIONS, SEVERITIES
from nares.data import paths
from nares.data.cifar10c_manifest import is_generated, read_manifest, verify_files
from nares.data.images import ImageSet
from nares.data.readers import read_corruption, read_corruption_labels
from nares.errors import DataError

_HOW = "`nares data fetch cifar10-c` downloads CIFAR-10-C, `nares data make-cifar10c` generates it"


def _complete(folder: Path) -> bool:
    return all((folder / f"{name}.npy").is_file() for name in (*CORRUPTIONS, "labels"))


def corruptions_folder(root: Path | None = None) -> Path:
    """The CIFAR-10-C folder the readers use (module docstring): `<root>/cifar10-c`, or with no root the
    configured data root's, else the generated set under `$NARES_HOME/data/`."""
    folder = paths.resolve_root(root) / paths.CIFAR10C_DIR
    if root is not None or _complete(folder):
        return folder
    generated = paths.generated_cifar10c_folder()
    return generated if _complete(generated) else folder


def corruptions_available(root: Path | None = None) -> bool:
    """True when all 19 `<corruption>.npy` files and `labels.npy` are present (in `corruptions_folder(root)`)."""
    return _complete(corruptions_folder(root))


def open_corruptions(root: Path | None = None, names: Iterable[str] = CORRUPTIONS) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{name: (memory-mapped images, labels)} for `names`, each file checked (header, size, labels; for a generated
    set also its sha256 against the manifest) before any is used."""
    folder = corruptions_folder(root)
    names = tuple(names)
    for name in names:
        if name not in CORRUPTIONS:
            raise DataError(f"corruption {name!r} is not one of the 19 CIFAR-10-C corruptions")
    for name in names:
        if not (folder / f"{name}.npy").is_file():
            raise DataError(f"{folder / f'{name}.npy'} is missing; {_HOW}")
    if not (folder / paths.CIFAR10C_LABELS).is_file():
        raise DataError(f"{folder / paths.CIFAR10C_LABELS} is missing; {_HOW}")
    if is_generated(folder):
        verify_files(folder, ("labels", *names))
    labels = read_corruption_labels(folder)
    return {name: read_corruption(folder, name, labels) for name in names}


def corruption_set_info(root: Path | None = None, *, verify: bool = False) -> dict[str, Any]:
    """Which CIFAR-10-C the readers use for `root` (see `corruptions_folder`), for the dataset card.

    {"source": "official" | "generated" | "absent", "folder", "per_severity" (images per severity)}; a generated
    set adds its manifest's identity: set_id, generator and generator_version, seed, source_images (dataset,
    path, count, first index, sha256), corruptions, reference, deviations, libraries. With `verify`, every
    file of a generated set is checked against the manifest first (DataError on a mismatch).
    """
    folder = corruptions_folder(root)
    if not _complete(folder):
        return {"source": "absent", "folder": str(folder), "per_severity": 0}
    if not is_generated(folder):
        labels = read_corruption_labels(folder)
        return {"source": "official", "folder": str(folder), "per_severity": len(labels) // len(SEVERITIES),
                "reference": "CIFAR-10-C, Hendrycks & Dietterich, ICLR 2019 (zenodo.org/record/2535967)"}
    manifest = read_manifest(folder)
    if verify:
        verify_files(folder, ("labels", *CORRUPTIONS), manifest)
    keys = ("set_id", "generator", "generator_version", "seed", "corruptions", "reference", "deviations", "libraries")
    return {"source": "generated", "folder": str(folder), "per_severity": manifest["per_severity"],
            **{k: manifest.get(k) for k in keys}, "source_images": manifest["source"]}


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
