"""The user cache of the query API: Parquet tables parsed from a jsonl, keyed by the file's sha256.

Layout: `<cache>/jsonl/<sha256>/` holds the store's tables (`nares.store.tables` layout) and
`summary.parquet`; `<cache>/summary/<fingerprint>.parquet` holds summaries of table folders.
A stat index (`<cache>/jsonl/index.json`: path, size, mtime → sha256) avoids re-hashing an
unchanged file. Every entry is written atomically; an entry without `summary.parquet` is ignored.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

from nares.environment import environment
from nares.io import atomic_write, sha256_file


def cache_root() -> Path:
    """`$NARES_CACHE_DIR`, else `~/.cache/nares`."""
    return environment().cache_dir


def file_sha256(path: Path) -> str:
    """sha256 of `path`, remembered by (path, size, mtime) so an unchanged file is hashed once."""
    digest = known_sha256(path)
    if digest is None:
        digest = sha256_file(path)
        remember_sha256(path, digest)
    return digest


def _index() -> tuple[Path, dict]:
    index_path = cache_root() / "jsonl" / "index.json"
    try:
        return index_path, json.loads(index_path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return index_path, {}


def known_sha256(path: Path) -> str | None:
    """The remembered sha256 of `path` if its size and mtime are unchanged, else None."""
    st = path.stat()
    hit = _index()[1].get(str(path.resolve()))
    if hit and hit.get("size") == st.st_size and hit.get("mtime_ns") == st.st_mtime_ns:
        return hit["sha256"]
    return None


def remember_sha256(path: Path, digest: str, stat=None) -> None:
    """Remember `digest` for `path` at its size and mtime (`stat`: as read when the digest was made)."""
    st = stat or path.stat()
    index_path, index = _index()
    index[str(path.resolve())] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}
    try:
        with atomic_write(index_path, "w") as fh:
            json.dump(index, fh)
    except OSError:
        pass  # a read-only cache only costs speed


def jsonl_entry(digest: str) -> Path:
    return cache_root() / "jsonl" / digest


def folder_fingerprint(files: Iterable[Path]) -> str:
    """A key for a set of files that changes whenever one is added, removed, resized or rewritten."""
    h = hashlib.sha256()
    for f in sorted(files):
        st = f.stat()
        h.update(f"{f.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()
