"""Checksummed, resumable downloads: `fetch("cifar10" | "cifar10.1" | "cifar10-c")`.

A file is streamed into `<name>.partial` (resumed with an HTTP Range request after an interruption,
in this call or a later one), its md5 checked, then renamed into place: a final file is always
complete and verified. Archives are unpacked into a temporary folder and moved into place.
"""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import os
import re
import shutil
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

from nares import __version__
from nares.data import paths
from nares.data.sources import REMOTES, Remote, Unpack
from nares.data.verify import check_md5, corrupt_message, md5_file
from nares.errors import DataError
from nares.io import fsync_dir

Progress = Callable[[str, int, int | None], None]  # (file name, bytes done, total bytes or None)

_CHUNK = 1 << 20
_RETRYABLE = (http.client.HTTPException, ConnectionError, TimeoutError, urllib.error.URLError, OSError)


def fetch(name: str, root: Path | None = None, *, mirror: str | None = None, progress: Progress | None = None) -> Path:
    """Download, verify and unpack dataset `name` under the data root; returns its folder.

    `mirror` replaces the official addresses by `<mirror>/<file name>` (an internal copy).
    Does nothing when the dataset is already complete.
    """
    if name not in REMOTES:
        raise DataError(f"unknown dataset {name!r}; fetchable: {', '.join(REMOTES)}")
    return fetch_remote(REMOTES[name], paths.resolve_root(root), mirror=mirror, progress=progress)


def fetch_remote(remote: Remote, root: Path, *, mirror: str | None = None, progress: Progress | None = None) -> Path:
    """`fetch` for any `Remote` description (files, checksums, unpack step)."""
    folder = root / remote.folder
    if _complete(folder, remote):
        return folder
    with _locked(folder):
        if _complete(folder, remote):
            return folder
        for f in remote.files:
            url = f"{mirror.rstrip('/')}/{f.filename}" if mirror else f.url
            download_file(url, folder / f.filename, md5=f.md5, size=f.size, progress=progress)
        if remote.unpack:
            archive = folder / remote.files[0].filename
            unpack(archive, folder, remote.unpack)
            if not remote.unpack.keep_archive:
                archive.unlink()
    return folder


def _complete(folder: Path, remote: Remote) -> bool:
    return all((folder / p).is_file() for p in remote.complete())


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Create `folder` and hold an exclusive lock on it, so two processes never write the same partial file."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fh = open(folder / ".fetch.lock", "a")  # noqa: SIM115 (closed below; the lock lives as long as the handle)
    except OSError as e:
        raise DataError(f"cannot write to {folder} ({e.strerror}); choose another --root or NARES_DATA_DIR") from None
    with fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def download_file(
    url: str,
    dest: Path,
    *,
    md5: str,
    size: int | None = None,
    retries: int = 3,
    backoff_s: float = 1.0,
    timeout: float = 60.0,
    progress: Progress | None = None,
) -> Path:
    """Download `url` to `dest` (resuming `dest.partial`), check size and md5, then rename into place.

    A connection lost mid-transfer is retried `retries` times (after backoff_s · 2^attempt seconds) from
    where it stopped; after that the partial file is kept so that the next call resumes it. A complete
    download with the wrong checksum is deleted and raises DataError naming the file and both md5s.
    """
    dest = Path(dest)
    if dest.is_file():
        check_md5(dest, md5, "delete it to download it again")
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    for attempt in range(retries + 1):
        try:
            _transfer(url, partial, size=size, timeout=timeout, progress=progress)
            break
        except _RETRYABLE as e:
            if isinstance(e, urllib.error.HTTPError) and e.code < 500:
                raise DataError(f"cannot download {url}: HTTP {e.code} {e.reason}") from None
            done = partial.stat().st_size if partial.exists() else 0
            if attempt == retries:
                why = f"{type(e).__name__}: {e}"
                if not done:
                    raise DataError(f"cannot download {url} ({why}; {retries + 1} attempts)") from None
                raise DataError(f"download of {url} stopped at {done} bytes ({why}); "
                                "run the same command again to resume") from None
            time.sleep(backoff_s * 2.0**attempt)
    got = partial.stat().st_size
    actual = md5_file(partial)
    if actual != md5 or (size is not None and got != size):
        partial.unlink()
        expected = f"{md5} ({size} bytes)" if size is not None else md5
        raise DataError(corrupt_message(f"{dest.name} downloaded from {url}", expected, f"{actual} ({got} bytes)",
                                        "the bad download was removed"))
    _fsync(partial)
    os.replace(partial, dest)
    fsync_dir(dest.parent)
    return dest


def _transfer(url: str, partial: Path, *, size: int | None, timeout: float, progress: Progress | None) -> None:
    """Append the rest of `url` to `partial` (restarting it when the server ignores the Range request)."""
    offset = partial.stat().st_size if partial.exists() else 0
    if size is not None and offset > size:
        partial.unlink()
        offset = 0
    if size is not None and offset == size:
        return
    headers = {"User-Agent": f"nares/{__version__}"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # nothing left to send: the partial file is already whole
            return
        raise
    with resp:
        total = resp.headers.get("Content-Range", "")
        resumed = resp.status == 206 and _range_start(total) == offset
        if not resumed:
            offset = 0
        length = resp.headers.get("Content-Length")
        expected_total = offset + int(length) if length and length.isdigit() else size
        with open(partial, "ab" if resumed else "wb") as out:
            done = offset
            while block := resp.read(_CHUNK):
                out.write(block)
                done += len(block)
                if progress:
                    progress(partial.name.removesuffix(".partial"), done, expected_total)
            out.flush()
            os.fsync(out.fileno())
    if length and length.isdigit() and done < expected_total:  # the server closed the connection early
        raise ConnectionError(f"connection closed after {done} of {expected_total} bytes")


def _range_start(content_range: str) -> int | None:
    m = re.match(r"bytes (\d+)-\d+/", content_range)
    return int(m.group(1)) if m else None


def unpack(archive: Path, folder: Path, spec: Unpack) -> None:
    """Extract the regular files under `spec.member_prefix` into `folder/spec.into`, all or nothing."""
    tmp = Path(tempfile.mkdtemp(prefix=".unpack-", dir=folder))
    try:
        try:
            with tarfile.open(archive, "r:*") as tar:
                for member in tar:
                    rest = member.name.removeprefix(spec.member_prefix)
                    if not member.isfile() or rest == member.name or not rest:
                        continue
                    if rest.startswith("/") or ".." in Path(rest).parts:
                        raise DataError(f"{archive} holds an unsafe member path {member.name!r}")
                    target = tmp / rest
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with tar.extractfile(member) as src, open(target, "wb") as dst:
                        shutil.copyfileobj(src, dst, _CHUNK)
                        dst.flush()
                        os.fsync(dst.fileno())
        except (tarfile.TarError, EOFError) as e:
            raise DataError(f"{archive} is not a readable tar archive ({type(e).__name__}: {e})") from None
        into = folder / spec.into if spec.into else folder
        for rel in spec.expected:
            inner = Path(rel).relative_to(spec.into) if spec.into else Path(rel)
            if not (tmp / inner).is_file():
                raise DataError(f"{archive} lacks {spec.member_prefix}{inner}")
        if spec.into:
            if into.exists():  # an incomplete earlier extraction
                shutil.rmtree(into)
            os.replace(tmp, into)
        else:
            for f in sorted(tmp.rglob("*")):
                if f.is_file():
                    dst = into / f.relative_to(tmp)
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(f, dst)
        fsync_dir(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _fsync(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


