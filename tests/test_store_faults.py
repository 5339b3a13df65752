"""Faults of the object store against the real local S3 server (s3rver): a dead endpoint, dropped connections,
corrupt stored copies, objects without metadata and the multipart parts an interrupted upload leaves."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from factory import local_s3
from factory.cli import main
from factory.local_s3 import UPLOADS_DIR, LocalS3Server
from nares.store.objects import CorruptObjectError, ObjectStore, StoreError, StoreUnreachable
from nares.store.settings import StoreSettings
from tests.s3_fixtures import running_s3_server, s3_server_fixture, s3_store_fixture  # noqa: F401  (fixtures)

pytestmark = pytest.mark.services


def _object_file(server: LocalS3Server, bucket: str, key: str, what: str = "object") -> Path:
    """Where s3rver keeps `key`'s bytes (`object`) or its metadata (`metadata.json`) on disk."""
    head, _, name = key.rpartition("/")
    return server.data_dir / bucket / head / f"{name}._S3rver_{what}"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


@pytest.fixture
def dead_env(monkeypatch, tmp_path: Path) -> str:
    """The environment of a CLI whose store endpoint is a closed loopback port; returns that endpoint."""
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("NARES_S3_ENDPOINT", endpoint)
    monkeypatch.setenv("NARES_RELEASES", str(tmp_path / "releases"))
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    return endpoint


# ------------------------------------------------------------ a dead endpoint is diagnosed in seconds


def test_closed_port_fails_fast_naming_the_endpoint(dead_env: str, tmp_path: Path):
    """Against a closed port each operation gives up at once (was 20-40 s each: retried with backoff)."""
    store = ObjectStore(StoreSettings.from_env())
    src = tmp_path / "f.bin"
    src.write_bytes(b"x" * 1000)
    key = store.content_key(hashlib.sha256(b"x" * 1000).hexdigest())
    calls = {
        "head": lambda: store.head("a"),
        "list": lambda: store.list_keys(""),
        "put": lambda: store.put_file(src),
        "get": lambda: store.get_file(key, tmp_path / "g.bin"),
        "get_bytes": lambda: store.get_bytes("a"),
        "clean": lambda: store.clean_staging(0),
    }
    for name, call in calls.items():
        t0 = time.monotonic()
        with pytest.raises(StoreUnreachable) as err:
            call()
        assert time.monotonic() - t0 < 3, name
        msg = str(err.value)
        assert dead_env in msg and "connection refused" in msg and "\n" not in msg, name
    assert not (tmp_path / "g.bin").exists()


def test_cli_on_a_dead_endpoint_one_line_exit_2(dead_env: str, tmp_path: Path, capsys):
    """`release list` used to print `no releases` and exit 0 when the store was unreachable."""
    (tmp_path / "f.bin").write_bytes(b"y" * 10)
    for argv in (
        ["release", "list"],
        ["release", "list", "--json"],
        ["store", "put", str(tmp_path / "f.bin")],
        ["store", "get", "objects/sha256/00/" + "0" * 64, str(tmp_path / "g.bin")],
        ["store", "clean-staging"],
    ):
        t0 = time.monotonic()
        assert main(argv) == 2, argv
        assert time.monotonic() - t0 < 3, argv
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1 and err.startswith("nares: error: "), argv
        assert dead_env in err and "connection refused" in err, argv


class _DroppingServer:
    """A TCP listener that accepts every connection and closes it at once (a server dying mid-request)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()


@pytest.fixture
def dropping_server() -> Iterator[_DroppingServer]:
    server = _DroppingServer()
    yield server
    server.sock.close()


def test_dropped_connections_are_still_retried(dropping_server: _DroppingServer):
    """Only a refused connection fails at once: one closed mid-request is transient and retried."""
    settings = StoreSettings.from_env({"NARES_S3_ENDPOINT": f"http://127.0.0.1:{dropping_server.port}"})
    store = ObjectStore(settings.with_(max_attempts=3))
    with pytest.raises(StoreError) as err:
        store.head("a")
    assert not isinstance(err.value, StoreUnreachable)
    assert dropping_server.accepted >= 3  # every attempt of the standard retry policy was made


# ------------------------------------------------------------ content is verified against the key


def test_put_replaces_a_corrupt_stored_copy(s3_server: LocalS3Server, s3_store: ObjectStore, tmp_path: Path):
    """A stored copy whose metadata claims the right sha256 and size but whose bytes are corrupt is read back,
    found corrupt and replaced (it used to be trusted: put returned at once and left it corrupt)."""
    src = tmp_path / "ckpt.pt"
    src.write_bytes(bytes(range(256)) * 40)
    key, sha, size = s3_store.put_file(src)
    on_disk = _object_file(s3_server, s3_store.bucket, key)
    data = bytearray(on_disk.read_bytes())
    data[100] ^= 0xFF
    on_disk.write_bytes(bytes(data))  # same size, metadata untouched
    assert not s3_store.verify(key, sha)
    assert s3_store.put_file(src) == (key, sha, size)
    assert s3_store.verify(key, sha) and on_disk.read_bytes() == src.read_bytes()
    assert s3_store.list_keys("staging/") == ["staging/.keep"]
    before = on_disk.stat().st_mtime_ns
    assert s3_store.put_file(src) == (key, sha, size)  # intact now: verified, not uploaded again
    assert on_disk.stat().st_mtime_ns == before


def test_cli_put_repairs_a_corrupt_stored_copy(
    s3_server: LocalS3Server, s3_store: ObjectStore, tmp_path: Path, monkeypatch, capsys
):
    monkeypatch.setenv("NARES_S3_ENDPOINT", s3_server.endpoint_url)
    monkeypatch.setenv("NARES_S3_BUCKET", s3_store.bucket)
    monkeypatch.delenv("NARES_S3_PREFIX", raising=False)
    src = tmp_path / "w.bin"
    src.write_bytes(b"weights" * 500)
    key, sha, _ = s3_store.put_file(src)
    on_disk = _object_file(s3_server, s3_store.bucket, key)
    on_disk.write_bytes(b"W" + on_disk.read_bytes()[1:])
    assert main(["store", "put", str(src)]) == 0
    assert capsys.readouterr().out.split() == [key, sha, str(src.stat().st_size)]
    assert s3_store.verify(key, sha)


def test_get_checks_a_content_key_whatever_its_metadata(
    s3_server: LocalS3Server, s3_store: ObjectStore, tmp_path: Path, monkeypatch, capsys
):
    """A content key whose metadata lacks the sha256 is still checked against the key (it used to be written
    unchecked, corrupt bytes included)."""
    monkeypatch.setenv("NARES_S3_ENDPOINT", s3_server.endpoint_url)
    monkeypatch.setenv("NARES_S3_BUCKET", s3_store.bucket)
    monkeypatch.delenv("NARES_S3_PREFIX", raising=False)
    src = tmp_path / "ckpt.pt"
    src.write_bytes(b"abc" * 5000)
    key, sha, _ = s3_store.put_file(src)
    meta = _object_file(s3_server, s3_store.bucket, key, "metadata.json")
    stripped = {k: v for k, v in json.loads(meta.read_text()).items() if not k.startswith("x-amz-meta-")}
    meta.write_text(json.dumps(stripped))
    assert s3_store.head(key)["sha256"] is None
    assert s3_store.download(key, tmp_path / "ok.pt") == sha  # intact: checked against the key, written
    on_disk = _object_file(s3_server, s3_store.bucket, key)
    on_disk.write_bytes(b"X" + on_disk.read_bytes()[1:])
    with pytest.raises(CorruptObjectError, match="is corrupt"):
        s3_store.get_file(key, tmp_path / "bad.pt")
    assert main(["store", "get", key, str(tmp_path / "bad.pt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nares: error: ") and "is corrupt" in err and err.count("\n") == 1
    assert not (tmp_path / "bad.pt").exists() and list(tmp_path.glob(".bad.pt*")) == []
    # A wrong --sha256 for a content key is refused before anything is read.
    with pytest.raises(StoreError, match="content-addressed"):
        s3_store.get_file(key, tmp_path / "bad.pt", "0" * 64)


def test_get_refuses_an_unverifiable_object(s3_server: LocalS3Server, s3_store: ObjectStore, tmp_path: Path):
    """A key that is not content-addressed and records no sha256 is not downloaded unless one is given."""
    key, sha, _ = s3_store.put_bytes(b"notes", "notes/a.txt")
    meta = _object_file(s3_server, s3_store.bucket, key, "metadata.json")
    stripped = {k: v for k, v in json.loads(meta.read_text()).items() if not k.startswith("x-amz-meta-")}
    meta.write_text(json.dumps(stripped))
    with pytest.raises(StoreError, match="records no sha256"):
        s3_store.get_file(key, tmp_path / "a.txt")
    assert not (tmp_path / "a.txt").exists()
    assert s3_store.get_file(key, tmp_path / "a.txt", sha).read_bytes() == b"notes"


# ------------------------------------------------------------ multipart uploads left by a crash


def _orphan_upload(store: ObjectStore, key: str, size: int) -> str:
    """Start a multipart upload to `key` and store one part, as a client that then dies would."""
    c = store._client
    upload_id = c.create_multipart_upload(Bucket=store.bucket, Key=key)["UploadId"]
    c.upload_part(Bucket=store.bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=b"p" * size)
    return upload_id


def test_clean_staging_never_reports_unlisted_uploads_as_clean(s3_store: ObjectStore):
    """s3rver answers ListMultipartUploads with NotImplemented: the store says so (it used to report 0)."""
    _orphan_upload(s3_store, "staging/dead", 1000)
    done = s3_store.clean_staging(0)
    assert (done.objects, done.uploads) == (0, 0)
    assert "cannot list multipart uploads (NotImplemented)" in done.uploads_unchecked
    assert s3_store.settings.endpoint_url in done.uploads_unchecked


def test_embedded_server_parts_are_removed_from_disk(s3_server: LocalS3Server, s3_store: ObjectStore):
    uploads = s3_server.data_dir / s3_store.bucket / UPLOADS_DIR
    ours = _orphan_upload(s3_store, "staging/dead-1", 300_000)
    theirs = _orphan_upload(s3_store, "elsewhere/other-client", 1000)  # not under staging/: not ours
    done = local_s3.clean_staging(s3_store, 3600, s3_server)
    assert (done.uploads, done.uploads_unchecked) == (0, None)  # too recent: kept
    assert {p.name for p in uploads.iterdir()} == {ours, theirs}
    done = local_s3.clean_staging(s3_store, 0, s3_server)
    assert (done.objects, done.uploads, done.uploads_unchecked) == (0, 1, None)
    assert 300_000 <= done.upload_bytes < 301_000  # the part, its md5 and the upload's key and metadata
    assert [p.name for p in uploads.iterdir()] == [theirs]
    # A server of the same kind that is not the one serving the endpoint is left alone.
    other = LocalS3Server(s3_server.state.parent / "not-running", s3_server.port)
    assert local_s3.clean_staging(s3_store, 0, other).uploads_unchecked is not None


def test_cli_clean_staging(tmp_path: Path, monkeypatch, capsys):
    """The CLI frees an orphan's parts on the embedded server, and fails (exit 2) where it cannot list them."""
    home = tmp_path / "home"
    with running_s3_server(home / "s3") as server:
        monkeypatch.setenv("NARES_HOME", str(home))
        monkeypatch.setenv("NARES_S3_PORT", str(server.port))
        for var in ("NARES_S3_ENDPOINT", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "NARES_S3_PREFIX"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("NARES_S3_BUCKET", "gcb")
        store = ObjectStore(server.settings(bucket="gcb"))
        store.ensure_bucket()
        store.put_bytes(b"kept", "notes/kept.txt")
        _orphan_upload(store, "staging/dead", 2_000_000)
        assert main(["store", "clean-staging", "--older-than", "0"]) == 0
        out = capsys.readouterr().out
        assert out == "deleted 0 staging objects; multipart uploads: aborted 1 (2.0 MB of parts)\n"
        assert list((server.data_dir / "gcb" / UPLOADS_DIR).iterdir()) == []
        assert store.get_bytes("notes/kept.txt") == b"kept"
        # The same server reached as a store that is not the embedded one (its state is elsewhere).
        monkeypatch.setenv("NARES_HOME", str(tmp_path / "another-home"))
        assert main(["store", "clean-staging"]) == 2
        out, err = capsys.readouterr()
        assert out == "deleted 0 staging objects; multipart uploads: not checked\n"
        assert err.count("\n") == 1 and "cannot list multipart uploads (NotImplemented)" in err
