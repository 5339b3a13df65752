"""Checks on what a data file holds; each failure is one DataError line naming the file and what is wrong.

Formats checked (dtypes as the official files have them):
- images: uint8 [N,32,32,3], N ≥ 1;
- labels: one integer label per image, in 0..9. Any integer dtype is accepted (the offline subset stores
  int64, CIFAR-10.1 v6 int32, CIFAR-10-C uint8, the CIFAR-10 batches a list of Python ints); float or
  bool labels are refused, never rounded or truncated;
- `.npy` files: a readable header, and exactly the bytes that header describes (so a truncated or padded
  file is refused on open, without reading the data, which matters for the memory-mapped CIFAR-10-C files).
"""

from __future__ import annotations

import math
import pickle
import tokenize
import zipfile
import zlib
from pathlib import Path

import numpy as np

from nares.errors import DataError

NUM_CLASSES = 10
IMAGE_SHAPE = (32, 32, 3)

# What numpy, zipfile, zlib, gzip, tarfile and pickle raise on a truncated, empty or damaged container.
READ_ERRORS: tuple[type[BaseException], ...] = (
    OSError, EOFError, ValueError, TypeError, KeyError, IndexError, NotImplementedError, MemoryError,
    zipfile.BadZipFile, zlib.error, pickle.UnpicklingError, tokenize.TokenError,
)


def reason(e: BaseException, limit: int = 160) -> str:
    """`Type: message` of an exception on one line, cut after `limit` characters."""
    text = " ".join(f"{type(e).__name__}: {e}".split())
    return text if len(text) <= limit else text[:limit] + "…"


def check_not_empty(path: Path) -> None:
    """Raise DataError when `path` is missing or has 0 bytes."""
    if not path.is_file():
        raise DataError(f"{path} is missing")
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty (0 bytes)")


def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, data offset) from the header of the `.npy` file `path`."""
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
            else:
                raise ValueError(f"unsupported .npy format version {version}")
            return shape, dtype, fh.tell()
    except READ_ERRORS as e:
        raise DataError(f"{path} is not a readable .npy ({reason(e)})") from None


def load_npy(path: Path, *, mmap: bool = False) -> np.ndarray:
    """The array in the `.npy` file `path` (memory-mapped when `mmap`), after checking its header and size."""
    check_not_empty(path)
    shape, dtype, offset = _npy_header(path)
    if dtype.hasobject:
        raise DataError(f"{path} holds Python objects ({dtype}), not a numeric array")
    size, needed = path.stat().st_size, offset + math.prod(shape) * dtype.itemsize
    if size != needed:
        raise DataError(f"{path} has {size} bytes, but its header describes {shape} {dtype} "
                        f"({needed} bytes): the file is {'truncated' if size < needed else 'padded'}")
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except READ_ERRORS as e:
        raise DataError(f"{path} is not a readable .npy ({reason(e)})") from None


def check_image_array(x: np.ndarray, what: str) -> None:
    """Raise DataError unless x is uint8 [N,32,32,3] with N ≥ 1."""
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != IMAGE_SHAPE:
        raise DataError(f"{what}: images have shape {x.shape} {x.dtype}, expected (N, 32, 32, 3) uint8")
    if len(x) == 0:
        raise DataError(f"{what}: holds no images")


def check_labels(y: np.ndarray, what: str, n: int | None = None) -> np.ndarray:
    """`y` as int64 after checking it is 1-D, of an integer dtype, in 0..9 and (when given) `n` long."""
    if y.ndim != 1:
        raise DataError(f"{what}: labels have shape {y.shape}, expected one label per image")
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{what}: labels have dtype {y.dtype}, expected an integer dtype (class indices 0..9)")
    if n is not None and len(y) != n:
        raise DataError(f"{what}: {len(y)} labels for {n} images")
    if len(y) == 0:
        raise DataError(f"{what}: holds no labels")
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi >= NUM_CLASSES:
        raise DataError(f"{what}: labels outside 0..{NUM_CLASSES - 1} (min {lo}, max {hi})")
    return y.astype(np.int64)


def check_images(x: np.ndarray, y: np.ndarray, what: str) -> np.ndarray:
    """Check images `x` and their labels `y`; returns the labels as int64."""
    check_image_array(x, what)
    return check_labels(y, what, len(x))
