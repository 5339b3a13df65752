"""Readers for the CIFAR file formats; each returns numpy arrays `x` uint8 [N,32,32,3] (HWC) and `y` int64 [N].

- CIFAR-10 python version: the official `cifar-10-python.tar.gz` or its extracted `cifar-10-batches-py/`
  (pickled dicts with b"data" (N,3072) uint8 rows in CHW order and b"labels"), md5-checked.
- CIFAR-10.1 v6: `cifar10.1_v6_data.npy` + `cifar10.1_v6_labels.npy`, md5-checked.
- CIFAR-10-C: `<corruption>.npy` (5·n rows: severity s is rows n·(s−1)…n·s; the official files have
  n = 10,000) + `labels.npy` (the same n labels once per severity), memory-mapped.
- A plain `.npz` holding x_train/y_train/x_test/y_test (the offline subset).

Every reader checks what it read (`nares.data.checks`): a damaged container, a wrong dtype or shape, labels
outside 0..9 or a count mismatch is one DataError line naming the file. Pickles are read with an unpickler
that only resolves the few numpy names an image batch needs.
"""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np

from nares.data import paths
from nares.data.checks import (
    READ_ERRORS,
    check_image_array,
    check_images,
    check_labels,
    check_not_empty,
    load_npy,
    reason,
)
from nares.data.sources import (
    CIFAR10_BATCH_MD5,
    CIFAR10_TARBALL_MD5,
    CIFAR10_TEST_BATCHES,
    CIFAR10_TRAIN_BATCHES,
    CIFAR101_MD5,
)
from nares.data.verify import check_md5, check_md5_bytes
from nares.errors import DataError

SPLITS = ("train", "test")
SUBSET_KEYS = ("x_train", "y_train", "x_test", "y_test")
SEVERITY_COUNT = 5
CIFAR10C_MAX_PER_SEVERITY = 10_000  # the CIFAR-10 test set, which each severity of CIFAR-10-C corrupts
_CIFAR10_HINT = "delete it and run `nares data fetch cifar10`"

_ALLOWED_GLOBALS = {
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _BatchUnpickler(pickle.Unpickler):
    """Resolves only the globals a pickled numpy image batch uses; anything else is refused."""

    def find_class(self, module: str, name: str):
        if module.startswith("numpy.core."):  # pickles written by numpy 1.x
            module = "numpy._core." + module.removeprefix("numpy.core.")
        if (module, name) not in _ALLOWED_GLOBALS:
            raise DataError(f"refusing to unpickle {module}.{name}: not part of a CIFAR batch")
        return super().find_class(module, name)


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise DataError(f"split {split!r} is not one of {', '.join(SPLITS)}")


def _decode_batch(raw: bytes, what: str) -> tuple[np.ndarray, np.ndarray]:
    if not raw:
        raise DataError(f"{what} is empty (0 bytes)")
    try:
        obj = _BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except DataError:
        raise
    except Exception as e:
        raise DataError(f"{what} is not a CIFAR-10 python batch ({reason(e)})") from None
    if not isinstance(obj, dict) or b"data" not in obj or b"labels" not in obj:
        raise DataError(f"{what} is not a CIFAR-10 python batch (no b'data'/b'labels' entries)")
    data = obj[b"data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        shape = (data.shape, data.dtype) if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{what}: b'data' is {shape}, expected a (N, 3072) uint8 array")
    x = np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    check_image_array(x, what)
    try:
        labels = np.asarray(obj[b"labels"])
    except READ_ERRORS as e:
        raise DataError(f"{what}: b'labels' is not a list of class indices ({reason(e)})") from None
    return x, check_labels(labels, what, len(x))


def read_batch_file(path: str | Path, *, verify: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """One file of `cifar-10-batches-py/` (named as the official one, whose md5 it must have with `verify`)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} is missing; `nares data fetch cifar10` downloads CIFAR-10")
    raw = path.read_bytes()
    if not raw:
        raise DataError(f"{path} is empty (0 bytes); {_CIFAR10_HINT}")
    if verify:
        check_md5_bytes(raw, str(path), CIFAR10_BATCH_MD5[path.name], _CIFAR10_HINT)
    return _decode_batch(raw, str(path))


def _tarball_batches(path: Path, batches: tuple[str, ...], verify: bool) -> dict[str, bytes]:
    check_not_empty(path)
    if verify:
        check_md5(path, CIFAR10_TARBALL_MD5, _CIFAR10_HINT)
    wanted = {f"{paths.CIFAR10_BATCHES_DIR}/{b}": b for b in batches}
    raws: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                if member.name in wanted and member.isfile():
                    raws[wanted[member.name]] = tar.extractfile(member).read()
    except (tarfile.TarError, *READ_ERRORS) as e:
        raise DataError(f"{path} is not a readable CIFAR-10 tarball ({reason(e)})") from None
    missing = [m for m, b in wanted.items() if b not in raws]
    if missing:
        raise DataError(f"{path} lacks {missing[0]}")
    return raws


def read_cifar10_python(path: str | Path, split: str, *, verify: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The official CIFAR-10 `split` ("train": 50,000 images, "test": 10,000) in the standard order.

    `path` is `cifar-10-python.tar.gz` or the extracted `cifar-10-batches-py/` folder. With `verify`,
    the tarball (or each batch file) must have its official md5.
    """
    _check_split(split)
    path = Path(path)
    batches = CIFAR10_TRAIN_BATCHES if split == "train" else CIFAR10_TEST_BATCHES
    if path.is_dir():
        parts = [read_batch_file(path / b, verify=verify) for b in batches]
    elif path.is_file():
        raws = _tarball_batches(path, batches, verify)
        parts = [_decode_batch(raws[b], f"{path}:{b}") for b in batches]
    else:
        raise DataError(f"{path} does not exist; `nares data fetch cifar10` downloads CIFAR-10")
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def read_cifar101(folder: str | Path, *, verify: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10.1 v6 (2,000 images) from `folder` holding the data and labels `.npy` pair."""
    folder = Path(folder)
    files = {name: folder / name for name in (paths.CIFAR101_DATA, paths.CIFAR101_LABELS)}
    for f in files.values():
        if not f.is_file():
            raise DataError(f"{f} is missing; `nares data fetch cifar10.1` downloads CIFAR-10.1")
        check_not_empty(f)
    for name, f in files.items():
        if verify:
            check_md5(f, CIFAR101_MD5[name], "delete it and run `nares data fetch cifar10.1`")
    data, labels = files[paths.CIFAR101_DATA], files[paths.CIFAR101_LABELS]
    x = load_npy(data)
    check_image_array(x, str(data))
    y = check_labels(load_npy(labels), str(labels))
    if len(y) != len(x):
        raise DataError(f"{labels}: {len(y)} labels for the {len(x)} images of {data.name}")
    return x, y


def read_npz_subset(path: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A `.npz` with x_train/y_train/x_test/y_test (HWC uint8 images): {"train": (x, y), "test": (x, y)}."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist")
    check_not_empty(path)
    try:
        npz = np.load(path, allow_pickle=False)
    except READ_ERRORS as e:
        raise DataError(f"{path} is not a readable .npz ({reason(e)})") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise DataError(f"{path} holds a single array, not a .npz archive of {', '.join(SUBSET_KEYS)}")
    with npz:
        missing = [k for k in SUBSET_KEYS if k not in npz.files]
        if missing:
            raise DataError(f"{path} lacks the array {missing[0]!r} (has: {', '.join(npz.files)})")
        arrays = {}
        for k in SUBSET_KEYS:
            try:
                arrays[k] = npz[k]
            except READ_ERRORS as e:
                raise DataError(f"{path} is not a readable .npz: its array {k!r} is damaged ({reason(e)})") from None
    return {s: (arrays[f"x_{s}"], check_images(arrays[f"x_{s}"], arrays[f"y_{s}"], f"{path}:{s}")) for s in SPLITS}


def read_corruption_labels(folder: str | Path) -> np.ndarray:
    """CIFAR-10-C `labels.npy` as int64 [5·n]: n ≤ 10,000 labels in 0..9, the same n for each severity."""
    path = Path(folder) / paths.CIFAR10C_LABELS
    y = check_labels(load_npy(path), str(path))
    per, rest = divmod(len(y), SEVERITY_COUNT)
    if rest or per > CIFAR10C_MAX_PER_SEVERITY:
        raise DataError(f"{path}: {len(y)} labels, expected {SEVERITY_COUNT} severities × n with n ≤ "
                        f"{CIFAR10C_MAX_PER_SEVERITY} (the official file has {SEVERITY_COUNT * CIFAR10C_MAX_PER_SEVERITY})")
    blocks = y.reshape(SEVERITY_COUNT, per)
    for s in range(1, SEVERITY_COUNT):
        if not np.array_equal(blocks[s], blocks[0]):
            raise DataError(f"{path}: the labels of severity {s + 1} differ from those of severity 1 "
                            "(CIFAR-10-C repeats the test labels once per severity)")
    return y


def read_corruption(folder: str | Path, name: str, labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10-C `name`: (memory-mapped uint8 [5·n,32,32,3], int64 labels [5·n]); severity s is rows n·(s−1)…n·s.

    Only the `.npy` header and size of the images are checked (their pixels stay on disk); `labels`, when
    given, are those `read_corruption_labels(folder)` returned.
    """
    folder = Path(folder)
    y = read_corruption_labels(folder) if labels is None else labels
    path = folder / f"{name}.npy"
    x = load_npy(path, mmap=True)
    check_image_array(x, str(path))
    if len(x) != len(y):
        raise DataError(f"{path}: {len(x)} images, but {paths.CIFAR10C_LABELS} has {len(y)} labels")
    return x, y
