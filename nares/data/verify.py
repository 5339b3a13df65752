"""Checksum checks that fail with one line naming the file, the expected and the actual checksum."""

from __future__ import annotations

import hashlib
from pathlib import Path

from nares.errors import DataError


def md5_bytes(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def md5_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def corrupt_message(what: str | Path, expected: str, actual: str, hint: str = "") -> str:
    msg = f"{what} is corrupt: expected md5 {expected}, got {actual}"
    return f"{msg}; {hint}" if hint else msg


def check_md5(path: str | Path, expected: str, hint: str = "") -> None:
    """Raise DataError unless the file's md5 is `expected`."""
    actual = md5_file(path)
    if actual != expected:
        raise DataError(corrupt_message(path, expected, actual, hint))


def check_md5_bytes(data: bytes, what: str, expected: str, hint: str = "") -> None:
    actual = md5_bytes(data)
    if actual != expected:
        raise DataError(corrupt_message(what, expected, actual, hint))
