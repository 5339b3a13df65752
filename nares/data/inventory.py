"""What data is present under a data root, with image counts (the `nares data info` table)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nares.constants import CORRUPTIONS
from nares.data import paths
from nares.data.readers import read_cifar10_python, read_cifar101, read_corruption, read_npz_subset
from nares.data.splits import cifar10_location
from nares.errors import DataError


def data_inventory(root: Path | None = None) -> list[dict[str, Any]]:
    """One row per dataset: name, status (ok | missing | incomplete | corrupt), path, detail."""
    root = paths.resolve_root(root)
    return [_cifar10(root), _subset(root), _cifar101(root), _cifar10c(root)]


def _row(name: str, status: str, path: Path, detail: str) -> dict[str, Any]:
    return {"name": name, "status": status, "path": str(path), "detail": detail}


def _cifar10(root: Path) -> dict[str, Any]:
    try:
        where = cifar10_location(root)
    except DataError:
        return _row("cifar10", "missing", root / paths.CIFAR10_DIR / paths.CIFAR10_TARBALL, "`nares data fetch cifar10`")
    try:
        counts = {s: len(read_cifar10_python(where, s)[1]) for s in ("train", "test")}
    except DataError as e:
        return _row("cifar10", "corrupt", where, str(e))
    return _row("cifar10", "ok", where, f"train {counts['train']}, test {counts['test']} (md5 verified)")


def _subset(root: Path) -> dict[str, Any]:
    path = root / paths.CIFAR10_DIR / paths.CIFAR10_SUBSET
    if not path.is_file():
        return _row("cifar10-subset", "missing", path, "offline subset; not downloadable")
    try:
        s = read_npz_subset(path)
    except DataError as e:
        return _row("cifar10-subset", "corrupt", path, str(e))
    return _row("cifar10-subset", "ok", path, f"train {len(s['train'][1])}, test {len(s['test'][1])}")


def _cifar101(root: Path) -> dict[str, Any]:
    folder = root / paths.CIFAR101_DIR
    present = [f for f in (paths.CIFAR101_DATA, paths.CIFAR101_LABELS) if (folder / f).is_file()]
    if len(present) < 2:
        status = "incomplete" if present else "missing"
        return _row("cifar10.1", status, folder, f"has {', '.join(present) or 'nothing'}; `nares data fetch cifar10.1`")
    try:
        n = len(read_cifar101(folder)[1])
    except DataError as e:
        return _row("cifar10.1", "corrupt", folder, str(e))
    return _row("cifar10.1", "ok", folder, f"{n} images (md5 verified)")


def _cifar10c(root: Path) -> dict[str, Any]:
    folder = root / paths.CIFAR10C_DIR
    have = [c for c in CORRUPTIONS if (folder / f"{c}.npy").is_file()]
    labels = (folder / paths.CIFAR10C_LABELS).is_file()
    if not have and not labels:
        return _row("cifar10-c", "missing", folder, "`nares data fetch cifar10-c`")
    if len(have) < len(CORRUPTIONS) or not labels:
        return _row("cifar10-c", "incomplete", folder,
                    f"{len(have)}/{len(CORRUPTIONS)} corruptions, labels.npy {'present' if labels else 'missing'}")
    try:
        rows = {len(read_corruption(folder, c)[0]) for c in have}
    except DataError as e:
        return _row("cifar10-c", "corrupt", folder, str(e))
    per = ", ".join(str(r // 5) for r in sorted(rows))
    return _row("cifar10-c", "ok", folder, f"{len(have)} corruptions x 5 severities x {per} images")
