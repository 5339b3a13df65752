"""What data is present under a data root, with image counts (the `nares data info` table).

Every present file is checked as the readers check it; an absent file is not an error (its dataset is
`missing` or `incomplete`), a bad one makes its dataset `corrupt` and adds one line to its `problems`.
A CIFAR-10-C folder holding a generated set's manifest is also checked against it (sha256 of every file).
Without an explicit root, a fifth row, `cifar10-c-generated`, shows the set `nares data make-cifar10c`
writes under `$NARES_HOME/data/cifar10-c/`, which the readers use when the data root has no complete CIFAR-10-C.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from nares.constants import CORRUPTIONS
from nares.data import paths
from nares.data.checks import check_image_array, check_labels, load_npy
from nares.data.cifar10c_manifest import is_generated, read_manifest, verify_files
from nares.data.readers import (
    read_batch_file,
    read_cifar10_python,
    read_cifar101,
    read_corruption,
    read_corruption_labels,
    read_npz_subset,
)
from nares.data.sources import CIFAR10_TEST_BATCHES, CIFAR10_TRAIN_BATCHES, CIFAR101_MD5
from nares.data.verify import check_md5
from nares.errors import DataError

T = TypeVar("T")


def data_inventory(root: Path | None = None) -> list[dict[str, Any]]:
    """One row per dataset: name, status (ok | missing | incomplete | corrupt), path, detail, problems.

    `problems` holds one line per bad file (empty unless the status is `corrupt`).
    """
    explicit = root is not None
    root = paths.resolve_root(root)
    rows = [_cifar10(root), _subset(root), _cifar101(root), _cifar10c(root / paths.CIFAR10C_DIR, "cifar10-c")]
    generated = paths.generated_cifar10c_folder()
    if not explicit and generated != root / paths.CIFAR10C_DIR:
        rows.append(_cifar10c(generated, "cifar10-c-generated", "`nares data make-cifar10c`"))
    return rows


def _row(name: str, status: str, path: Path, detail: str, problems: list[str] | None = None) -> dict[str, Any]:
    problems = problems or []
    if problems:
        status = "corrupt"
        more = f" (and {len(problems) - 1} more bad files)" if len(problems) > 1 else ""
        detail = problems[0] + more
    return {"name": name, "status": status, "path": str(path), "detail": detail, "problems": problems}


def _attempt(problems: list[str], read: Callable[[], T]) -> T | None:
    """`read()`, or None after adding its DataError's line to `problems`."""
    try:
        return read()
    except DataError as e:
        problems.append(str(e))
        return None


def _cifar10(root: Path) -> dict[str, Any]:
    folder = root / paths.CIFAR10_DIR
    batches_dir, tarball = folder / paths.CIFAR10_BATCHES_DIR, folder / paths.CIFAR10_TARBALL
    problems: list[str] = []
    if batches_dir.is_dir():
        names = (*CIFAR10_TRAIN_BATCHES, *CIFAR10_TEST_BATCHES)
        present = [b for b in names if (batches_dir / b).is_file()]
        counts = {b: _attempt(problems, lambda b=b: len(read_batch_file(batches_dir / b)[1])) for b in present}
        if len(present) < len(names):
            missing = ", ".join(b for b in names if b not in present)
            return _row("cifar10", "incomplete", batches_dir, f"lacks {missing}; `nares data fetch cifar10`", problems)
        train = sum(counts[b] or 0 for b in CIFAR10_TRAIN_BATCHES)
        test = sum(counts[b] or 0 for b in CIFAR10_TEST_BATCHES)
        return _row("cifar10", "ok", batches_dir, f"train {train}, test {test} (md5 verified)", problems)
    if tarball.exists():
        counts = {s: _attempt(problems, lambda s=s: len(read_cifar10_python(tarball, s)[1])) for s in ("train", "test")}
        return _row("cifar10", "ok", tarball, f"train {counts['train']}, test {counts['test']} (md5 verified)",
                    problems[:1])  # the tarball is one file: one line
    return _row("cifar10", "missing", tarball, "`nares data fetch cifar10`")


def _subset(root: Path) -> dict[str, Any]:
    path = root / paths.CIFAR10_DIR / paths.CIFAR10_SUBSET
    if not path.exists():
        return _row("cifar10-subset", "missing", path, "offline subset; not downloadable")
    problems: list[str] = []
    s = _attempt(problems, lambda: read_npz_subset(path))
    detail = f"train {len(s['train'][1])}, test {len(s['test'][1])}" if s else ""
    return _row("cifar10-subset", "ok", path, detail, problems)


def _cifar101_file(path: Path) -> int:
    """Check one file of the CIFAR-10.1 pair on its own (md5, format); its row count."""
    check_md5(path, CIFAR101_MD5[path.name], "delete it and run `nares data fetch cifar10.1`")
    arr = load_npy(path)
    if path.name == paths.CIFAR101_DATA:
        check_image_array(arr, str(path))
    else:
        check_labels(arr, str(path))
    return len(arr)


def _cifar101(root: Path) -> dict[str, Any]:
    folder = root / paths.CIFAR101_DIR
    names = (paths.CIFAR101_DATA, paths.CIFAR101_LABELS)
    present = [f for f in names if (folder / f).is_file()]
    problems: list[str] = []
    for f in present:
        _attempt(problems, lambda f=f: _cifar101_file(folder / f))
    if len(present) < len(names):
        status = "incomplete" if present else "missing"
        return _row("cifar10.1", status, folder, f"has {', '.join(present) or 'nothing'}; `nares data fetch cifar10.1`",
                    problems)
    n = None if problems else _attempt(problems, lambda: len(read_cifar101(folder)[1]))  # the pair's lengths
    return _row("cifar10.1", "ok", folder, f"{n} images (md5 verified)", problems)


def _cifar10c(folder: Path, name: str, hint: str = "`nares data fetch cifar10-c`") -> dict[str, Any]:
    have = [c for c in CORRUPTIONS if (folder / f"{c}.npy").is_file()]
    has_labels = (folder / paths.CIFAR10C_LABELS).is_file()
    if not have and not has_labels:
        return _row(name, "missing", folder, hint)
    problems: list[str] = []
    generated = ""
    if is_generated(folder):
        manifest = _attempt(problems, lambda: read_manifest(folder))
        if manifest is not None:
            for c in (*have, *(["labels"] if has_labels else [])):
                _attempt(problems, lambda c=c: verify_files(folder, (c,), manifest))
            generated = (f"; generated: set {manifest['set_id'][:16]}, seed {manifest['seed']}, "
                         f"{manifest['source'].get('source')} test images (sha256 verified)")
    labels = _attempt(problems, lambda: read_corruption_labels(folder)) if has_labels else None
    for c in have:
        if labels is not None:
            _attempt(problems, lambda c=c: read_corruption(folder, c, labels))
        else:  # without usable labels, each file is still checked on its own
            _attempt(problems, lambda c=c: check_image_array(load_npy(folder / f"{c}.npy", mmap=True),
                                                             str(folder / f"{c}.npy")))
    if len(have) < len(CORRUPTIONS) or not has_labels:
        return _row(name, "incomplete", folder,
                    f"{len(have)}/{len(CORRUPTIONS)} corruptions, labels.npy {'present' if has_labels else 'missing'}"
                    f"{generated}", problems)
    per = len(labels) // 5 if labels is not None else 0
    return _row(name, "ok", folder, f"{len(have)} corruptions x 5 severities x {per} images{generated}", problems)
