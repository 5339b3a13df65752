"""The manifest of a generated CIFAR-10-C folder (`manifest.json`): what identifies the set, and its checksums.

Owns the manifest's format, its reading (every field checked; a bad manifest is one DataError line), the set's
identity (`set_id`: sha256 over the files' sha256, so two byte-identical sets share it whatever their dates) and
the verification of the files against it (sha256 and size; a changed or damaged file is one DataError line
naming it). A verified file is remembered by (path, inode, size, mtime) for the life of the process, so a
set is hashed once, not at every open. Imports only the standard library, `nares.io` and
`nares.data.paths`; must not import numpy, torch, OpenCV, Prefect, Ray or S3 code.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from nares.data import paths
from nares.errors import DataError
from nares.io import atomic_write, sha256_file

FORMAT = "nares-generated-cifar10c"
FORMAT_VERSION = 1
_REGENERATE = "regenerate it with `nares data make-cifar10c`"
_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "format": str, "format_version": int, "generator": str, "generator_version": int, "seed": int,
    "source": dict, "per_severity": int, "severities": list, "corruptions": list, "files": dict, "set_id": str,
}

_verified: dict[tuple[str, int, int, int], str] = {}  # (path, inode, size, mtime_ns) -> sha256


def manifest_path(folder: Path) -> Path:
    return Path(folder) / paths.CIFAR10C_MANIFEST


def is_generated(folder: Path) -> bool:
    """True when `folder` holds a generated set's manifest (an official CIFAR-10-C folder has none)."""
    return manifest_path(folder).is_file()


def set_id(files: dict[str, dict[str, Any]]) -> str:
    """sha256 of the sorted "<file> <sha256>" lines: the identity of a set's bytes."""
    text = "".join(f"{name} {files[name]['sha256']}\n" for name in sorted(files))
    return hashlib.sha256(text.encode()).hexdigest()


def write_manifest(folder: Path, manifest: dict[str, Any]) -> Path:
    """Write `manifest` (its `set_id` recomputed from its `files`) atomically into `folder`."""
    manifest = {**manifest, "format": FORMAT, "format_version": FORMAT_VERSION, "set_id": set_id(manifest["files"])}
    path = manifest_path(folder)
    with atomic_write(path, "w") as fh:
        json.dump(manifest, fh, indent=1, sort_keys=False)
        fh.write("\n")
    return path


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of the generated set in `folder`, its fields checked."""
    path = manifest_path(folder)
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path} is missing: {folder} is not a generated CIFAR-10-C folder") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path} is not a readable manifest ({type(e).__name__}: {e}); {_REGENERATE}") from None
    if not isinstance(manifest, dict):
        raise DataError(f"{path} is not a manifest (a JSON object expected); {_REGENERATE}")
    for key, kind in _REQUIRED.items():
        if not isinstance(manifest.get(key), kind) or isinstance(manifest.get(key), bool):
            raise DataError(f"{path}: field {key!r} is {manifest.get(key)!r}, expected a {getattr(kind, '__name__', kind)}; "
                            f"{_REGENERATE}")
    if manifest["format"] != FORMAT or manifest["format_version"] != FORMAT_VERSION:
        raise DataError(f"{path}: format {manifest['format']!r} version {manifest['format_version']!r}, expected "
                        f"{FORMAT!r} version {FORMAT_VERSION}; {_REGENERATE}")
    for name, entry in manifest["files"].items():
        if not (isinstance(entry, dict) and isinstance(entry.get("sha256"), str) and isinstance(entry.get("bytes"), int)):
            raise DataError(f"{path}: the entry of {name!r} is {entry!r}, expected {{sha256, bytes}}; {_REGENERATE}")
    if set_id(manifest["files"]) != manifest["set_id"]:
        raise DataError(f"{path}: set_id {manifest['set_id']} does not match its files' checksums; {_REGENERATE}")
    return manifest


def _sha256_cached(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _verified:
        _verified[key] = sha256_file(path)
    return _verified[key]


def verify_files(folder: Path, names: Iterable[str], manifest: dict[str, Any] | None = None) -> dict[str, Any]:
    """Check the files `names` (corruption names or "labels") of the generated set in `folder` against its
    manifest (entry, size, sha256); returns the manifest. DataError (one line naming the file) otherwise."""
    folder = Path(folder)
    manifest = read_manifest(folder) if manifest is None else manifest
    mpath = manifest_path(folder)
    for name in names:
        fname = paths.CIFAR10C_LABELS if name == "labels" else f"{name}.npy"
        path = folder / fname
        entry = manifest["files"].get(fname)
        if entry is None:
            raise DataError(f"{path} is not listed in {mpath}: it is not part of the generated set; {_REGENERATE}")
        if not path.is_file():
            raise DataError(f"{path} is missing from the generated set of {mpath}; {_REGENERATE}")
        size = path.stat().st_size
        if size != entry["bytes"]:
            raise DataError(f"{path} has {size} bytes, but {mpath} lists {entry['bytes']}: the file was changed or "
                            f"damaged; {_REGENERATE}")
        actual = _sha256_cached(path)
        if actual != entry["sha256"]:
            raise DataError(f"{path} has sha256 {actual}, but {mpath} lists {entry['sha256']}: the file was changed "
                            f"or damaged; {_REGENERATE}")
    return manifest
