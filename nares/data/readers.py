"""Readers for the CIFAR file formats; each returns numpy arrays `x` uint8 [N,32,32,3] (HWC) and `y` int64 [N].

- CIFAR-10 python version: the official `cifar-10-python.tar.gz` or its extracted `cifar-10-batches-py/`
  (pickled dicts with b"data" (N,3072) uint8 rows in CHW order and b"labels"), md5-checked.
- CIFAR-10.1 v6: `cifar10.1_v6_data.npy` + `cifar10.1_v6_labels.npy`, md5-checked.
- CIFAR-10-C: `<corruption>.npy` (50000 rows: severity s is rows 10000·(s−1)…10000·s) + `labels.npy`,
  memory-mapped.
- A plain `.npz` holding x_train/y_train/x_test/y_test (the offline subset).

Pickles are read with an unpickler that only resolves the few numpy names an image batch needs.
"""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np

from nares.data import paths
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
NUM_CLASSES = 10
_IMAGE_SHAPE = (32, 32, 3)

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


def _check_image_array(x: np.ndarray, what: str) -> None:
    """Raise DataError unless x is uint8 [N,32,32,3]."""
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != _IMAGE_SHAPE:
        raise DataError(f"{what}: images have shape {x.shape} {x.dtype}, expected (N, 32, 32, 3) uint8")


def check_images(x: np.ndarray, y: np.ndarray, what: str) -> None:
    """Raise DataError unless x is uint8 [N,32,32,3] and y holds N labels in 0..9."""
    _check_image_array(x, what)
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(f"{what}: {y.shape} labels for {len(x)} images")
    if len(y) and (y.min() < 0 or y.max() >= NUM_CLASSES):
        raise DataError(f"{what}: labels outside 0..{NUM_CLASSES - 1} (min {y.min()}, max {y.max()})")


def _decode_batch(raw: bytes, what: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        obj = _BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except DataError:
        raise
    except Exception as e:
        raise DataError(f"{what} is not a CIFAR-10 python batch ({type(e).__name__}: {e})") from None
    if not isinstance(obj, dict) or b"data" not in obj or b"labels" not in obj:
        raise DataError(f"{what} is not a CIFAR-10 python batch (no b'data'/b'labels' entries)")
    data = np.asarray(obj[b"data"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(f"{what}: b'data' has shape {data.shape} {data.dtype}, expected (N, 3072) uint8")
    x = np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    y = np.asarray(obj[b"labels"], dtype=np.int64)
    check_images(x, y, what)
    return x, y


def read_cifar10_python(path: str | Path, split: str, *, verify: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The official CIFAR-10 `split` ("train": 50,000 images, "test": 10,000) in the standard order.

    `path` is `cifar-10-python.tar.gz` or the extracted `cifar-10-batches-py/` folder. With `verify`,
    the tarball (or each batch file) must have its official md5.
    """
    _check_split(split)
    path = Path(path)
    batches = CIFAR10_TRAIN_BATCHES if split == "train" else CIFAR10_TEST_BATCHES
    hint = "delete it and run `nares data fetch cifar10`"
    raws: dict[str, bytes] = {}
    if path.is_dir():
        for b in batches:
            f = path / b
            if not f.is_file():
                raise DataError(f"{f} is missing; `nares data fetch cifar10` downloads CIFAR-10")
            raws[b] = f.read_bytes()
            if verify:
                check_md5_bytes(raws[b], str(f), CIFAR10_BATCH_MD5[b], hint)
    elif path.is_file():
        if verify:
            check_md5(path, CIFAR10_TARBALL_MD5, hint)
        wanted = {f"{paths.CIFAR10_BATCHES_DIR}/{b}": b for b in batches}
        try:
            with tarfile.open(path, "r:*") as tar:
                for member in tar:
                    if member.name in wanted and member.isfile():
                        raws[wanted[member.name]] = tar.extractfile(member).read()
        except (tarfile.TarError, OSError, EOFError) as e:
            raise DataError(f"{path} is not a readable CIFAR-10 tarball ({type(e).__name__}: {e})") from None
        missing = [m for m, b in wanted.items() if b not in raws]
        if missing:
            raise DataError(f"{path} lacks {missing[0]}")
    else:
        raise DataError(f"{path} does not exist; `nares data fetch cifar10` downloads CIFAR-10")
    parts = [_decode_batch(raws[b], f"{path}:{b}" if path.is_file() else str(path / b)) for b in batches]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def read_cifar101(folder: str | Path, *, verify: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10.1 v6 (2,000 images) from `folder` holding the data and labels `.npy` pair."""
    folder = Path(folder)
    files = {name: folder / name for name in (paths.CIFAR101_DATA, paths.CIFAR101_LABELS)}
    for name, f in files.items():
        if not f.is_file():
            raise DataError(f"{f} is missing; `nares data fetch cifar10.1` downloads CIFAR-10.1")
        if verify:
            check_md5(f, CIFAR101_MD5[name], "delete it and run `nares data fetch cifar10.1`")
    x = _load_npy(files[paths.CIFAR101_DATA])
    y = _load_npy(files[paths.CIFAR101_LABELS]).astype(np.int64)
    check_images(x, y, str(folder))
    return x, y


def read_npz_subset(path: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A `.npz` with x_train/y_train/x_test/y_test (HWC uint8 images): {"train": (x, y), "test": (x, y)}."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in npz.files]
            if missing:
                raise DataError(f"{path} lacks the array {missing[0]!r} (has: {', '.join(npz.files)})")
            out = {s: (npz[f"x_{s}"], npz[f"y_{s}"].astype(np.int64)) for s in SPLITS}
    except (OSError, ValueError) as e:
        raise DataError(f"{path} is not a readable .npz ({type(e).__name__}: {e})") from None
    for s, (x, y) in out.items():
        check_images(x, y, f"{path}:{s}")
    return out


def read_corruption(folder: str | Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10-C `name`: (memory-mapped uint8 [5·n,32,32,3], int64 labels [5·n]); severity s is rows n·(s−1)…n·s."""
    folder = Path(folder)
    x = _load_npy(folder / f"{name}.npy", mmap=True)
    y = _load_npy(folder / paths.CIFAR10C_LABELS).astype(np.int64)
    what = str(folder / f"{name}.npy")
    _check_image_array(x, what)
    if len(x) != len(y) or len(x) % 5:
        raise DataError(f"{what}: {len(x)} images and {len(y)} labels; expected equal counts, a multiple of 5")
    return x, y


def _load_npy(path: Path, *, mmap: bool = False) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"{path} is missing")
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DataError(f"{path} is not a readable .npy ({type(e).__name__}: {e})") from None
