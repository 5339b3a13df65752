"""The embedded S3 server: s3rver (Node), disk-backed, on loopback; start, stop, status, bucket creation.

Why s3rver: it installs from npm here, speaks the S3 API used by boto3 and DVC (multipart included) and
keeps its objects on disk, so a release published today is still there after a restart tomorrow
(moto, the other candidate, keeps everything in memory). It runs as `node s3rver.js` directly: one PID,
recorded in `<state>/s3rver.pid`; its data lives in `<state>/data` (default state: `$NARES_HOME/s3`).
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from factory.procs import log_tail, read_pid, terminate
from nares.config import REPO_ROOT
from nares.errors import NaresError
from nares.store.settings import StoreSettings, nares_home, s3_port

S3RVER_JS = REPO_ROOT / "infra" / "local" / "node_modules" / "s3rver" / "bin" / "s3rver.js"
ADDRESS = "127.0.0.1"


class ServerError(NaresError):
    """The embedded S3 server cannot be started or stopped."""


def state_dir() -> Path:
    return nares_home() / "s3"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((ADDRESS, 0))
        return s.getsockname()[1]


def _read_pid(pid_file: Path) -> int | None:
    pid = read_pid(pid_file)
    if pid is None:
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return pid if b"s3rver" in cmdline else None  # a recycled PID is not ours


def _healthy(port: int, timeout: float = 1.0) -> bool:
    try:
        urllib.request.urlopen(f"http://{ADDRESS}:{port}/", timeout=timeout).close()
        return True
    except urllib.error.HTTPError:
        return True  # it answered (an unsigned request may be refused): it is up
    except OSError:
        return False


class LocalS3Server:
    """One s3rver process serving `state/data` on 127.0.0.1:`port`."""

    def __init__(self, state: str | Path | None = None, port: int | None = None):
        self.state = Path(state) if state else state_dir()
        self.port = int(port) if port else s3_port()

    @property
    def data_dir(self) -> Path:
        return self.state / "data"

    @property
    def pid_file(self) -> Path:
        return self.state / "s3rver.pid"

    @property
    def log_file(self) -> Path:
        return self.state / "s3rver.log"

    @property
    def endpoint_url(self) -> str:
        return f"http://{ADDRESS}:{self.port}"

    def settings(self, **changes) -> StoreSettings:
        """Settings that reach this server (embedded credentials, default bucket unless changed)."""
        env = {"NARES_S3_ENDPOINT": self.endpoint_url}
        return StoreSettings.from_env(env).with_(**changes)

    def pid(self) -> int | None:
        return _read_pid(self.pid_file)

    def status(self) -> dict:
        pid = self.pid()
        return {
            "running": pid is not None and _healthy(self.port),
            "pid": pid,
            "endpoint": self.endpoint_url,
            "data_dir": str(self.data_dir),
        }

    def start(self, timeout: float = 30.0) -> dict:
        """Start the server unless it already runs (idempotent); wait until it answers."""
        if self.pid() is not None and _healthy(self.port):
            return self.status()
        node = shutil.which("node")
        if node is None:
            raise ServerError("`node` is not on PATH; the embedded S3 server needs Node.js")
        if not S3RVER_JS.exists():
            raise ServerError(f"{S3RVER_JS} is missing; run `bash scripts/setup.sh` (npm ci in infra/local)")
        if _healthy(self.port, timeout=0.5):
            raise ServerError(f"port {self.port} on {ADDRESS} is taken by another program; set NARES_S3_PORT")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            offset = log.tell()
            proc = subprocess.Popen(
                [
                    node,
                    str(S3RVER_JS),
                    "--directory",
                    str(self.data_dir),
                    "--address",
                    ADDRESS,
                    "--port",
                    str(self.port),
                    "--silent",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        self.pid_file.write_text(f"{proc.pid}\n")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise ServerError(f"the S3 server exited with status {proc.returncode} while starting; "
                                  f"{log_tail(self.log_file, offset)} (log: {self.log_file})")
            if _healthy(self.port, timeout=0.5):
                return self.status()
            time.sleep(0.1)
        self.stop()
        raise ServerError(
            f"the S3 server did not answer on port {self.port} within {timeout:.0f} s and was stopped; "
            f"{log_tail(self.log_file, offset)} (log: {self.log_file})"
        )

    def stop(self, timeout: float = 10.0, *, kill: bool = False) -> bool:
        """Stop the server (SIGTERM, or SIGKILL with `kill=True` or after `timeout`); True if it was running."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        terminate(pid, timeout, sig=signal.SIGKILL if kill else signal.SIGTERM)
        self.pid_file.unlink(missing_ok=True)
        return True


def start() -> dict:
    """Start the default embedded server (`$NARES_HOME/s3`, port `$NARES_S3_PORT` or 9444) and its bucket."""
    server = LocalS3Server()
    out = server.start()
    ensure_bucket(server.settings(bucket=StoreSettings.from_env().bucket))
    return out


def stop() -> bool:
    return LocalS3Server().stop()


def status() -> dict:
    return LocalS3Server().status()


def ensure_bucket(settings: StoreSettings | None = None) -> None:
    """Create the settings' bucket if it does not exist."""
    from nares.store.objects import ObjectStore

    ObjectStore(settings or StoreSettings.from_env()).ensure_bucket()


@contextlib.contextmanager
def running(state: Path, port: int | None = None) -> Iterator[LocalS3Server]:
    """A server of its own with its data under `state` on `port` (default: a free one), stopped on exit."""
    server = LocalS3Server(state, port or free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


# ------------------------------------------------------------ multipart parts left on disk

# s3rver 3.7 keeps the parts of a multipart upload in `<data>/<bucket>/._S3rver_uploads/<upload id>/`
# (files `key`, `metadata`, `1`, `1.md5`, …) until CompleteMultipartUpload; it can neither list those uploads
# (ListMultipartUploads answers NotImplemented) nor abort them (AbortMultipartUpload: MethodNotAllowed), so
# the parts of an upload whose client or server died stay on disk unless removed here.
UPLOADS_DIR = "._S3rver_uploads"


def _serves(server: LocalS3Server, endpoint_url: str | None) -> bool:
    """True when `server` is running and is the process answering at `endpoint_url`."""
    from urllib.parse import urlparse

    from nares.store.settings import LOCAL_HOSTS

    url = urlparse(endpoint_url or "")
    pid = server.pid()
    if url.hostname not in LOCAL_HOSTS or url.port != server.port or pid is None:
        return False
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return False
    return str(server.data_dir) in args and str(server.port) in args


def clean_upload_parts(data_dir: Path, bucket: str, key_prefix: str, older_than_s: float) -> tuple[int, int]:
    """Remove the on-disk parts of s3rver multipart uploads to keys under `key_prefix` that nothing has
    touched for `older_than_s` seconds; returns (uploads removed, bytes freed)."""
    root = Path(data_dir) / bucket / UPLOADS_DIR
    cutoff = time.time() - older_than_s
    removed = freed = 0
    for upload in sorted(root.iterdir()) if root.is_dir() else []:
        try:
            files = [p for p in upload.rglob("*") if p.is_file()]
            key_file = upload / "key"
            key = key_file.read_text(errors="replace") if key_file.is_file() else ""
            if key and not key.startswith(key_prefix):
                continue  # another client's upload: not ours to remove
            if max(p.stat().st_mtime for p in [upload, *files]) >= cutoff:
                continue  # still being written (or too recent)
            size = sum(p.stat().st_size for p in files)
        except FileNotFoundError:
            continue  # completed (and removed by the server) meanwhile
        shutil.rmtree(upload, ignore_errors=True)
        removed, freed = removed + 1, freed + size
    return removed, freed


def clean_staging(store, older_than_s: float = 3600.0, server: LocalS3Server | None = None):
    """`store.clean_staging(older_than_s)` and, when the server behind the store's endpoint is the embedded
    one (`server`, default: this machine's), the multipart parts it keeps on disk; returns the `Cleanup`."""
    from dataclasses import replace

    done = store.clean_staging(older_than_s)
    server = server or LocalS3Server()
    if done.uploads_unchecked is None or not _serves(server, store.settings.endpoint_url):
        return done
    n, freed = clean_upload_parts(
        server.data_dir, store.bucket, store.settings.key("staging") + "/", older_than_s
    )
    return replace(
        done, uploads=done.uploads + n, upload_bytes=done.upload_bytes + freed, uploads_unchecked=None
    )
