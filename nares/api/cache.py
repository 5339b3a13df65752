"""The user cache of the query API: Parquet tables parsed from a jsonl, keyed by the file's sha256.

Layout: `<cache>/jsonl/<sha256>/` holds the store's tables (`nares.store.tables` layout) and
`summary.parquet`; `<cache>/summary/<fingerprint>.parquet` holds summaries of table folders.
A stat index (`<cache>/jsonl/index.json`: path, size, mtime → sha256) avoids re-hashing an
unchanged file. Every entry is written atomically; an entry without `summary.parquet` is ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

from nares.io import atomic_write, sha256_file


def cache_root() -> Path:
    """`$NARES_CACHE_DIR`, else `~/.cache/nares`."""
    return Path(os.environ.get("NARES_CACHE_DIR") or Path.home() / ".cache" / "nares")


def file_sha256(path: Path) -> str:
    """sha256 of `path`, remembered by (path, size, mtime) so an unchanged file is hashed once."""
    index_path = cache_root() / "jsonl" / "index.json"
    st = path.stat()
    key = str(path.resolve())
    try:
        index = json.loads(index_path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        index = {}
    hit = index.get(key)
    if hit and hit.get("size") == st.st_size and hit.get("mtime_ns") == st.st_mtime_ns:
        return hit["sha256"]
    digest = sha256_file(path)
    index[key] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}
    with atomic_write(index_path, "w") as fh:
        json.dump(index, fh)
    return digest


def jsonl_entry(digest: str) -> Path:
    return cache_root() / "jsonl" / digest


def folder_fingerprint(files: Iterable[Path]) -> str:
    """A key for a set of files that changes whenever one is added, removed, resized or rewritten."""
    h = hashlib.sha256()
    for f in sorted(files):
        st = f.stat()
        h.update(f"{f.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()
