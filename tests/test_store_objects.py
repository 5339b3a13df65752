"""The object store against a real local S3 server (s3rver): upload, verify, corruption, restarts."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

import pytest

from factory import local_s3
from factory.local_s3 import LocalS3Server
from nares.store.objects import CorruptObjectError, ObjectStore, StoreError
from nares.store.settings import StoreSettings
from tests.s3_fixtures import running_s3_server, s3_server_fixture, s3_store_fixture  # noqa: F401  (fixtures)

pytestmark = pytest.mark.services


def _file(path: Path, size: int, seed: int = 0) -> Path:
    data = hashlib.sha256(str(seed).encode()).digest() * (size // 32 + 1)
    path.write_bytes(data[:size])
    return path


def _object_file(server: LocalS3Server, bucket: str, key: str) -> Path:
    """Where s3rver keeps the bytes of `key` on disk."""
    head, _, name = key.rpartition("/")
    return server.data_dir / bucket / head / f"{name}._S3rver_object"


def test_settings_from_environment_mask_secrets():
    s = StoreSettings.from_env({})
    assert (s.endpoint_url, s.bucket, s.prefix) == ("http://127.0.0.1:9444", "nares", "")
    assert s.access_key_id == "S3RVER" and s.is_local  # the embedded server's fixed pair
    s = StoreSettings.from_env(
        {
            "NARES_S3_ENDPOINT": "https://s3.example.org",
            "NARES_S3_BUCKET": "b",
            "NARES_S3_PREFIX": "/team/nares/",
            "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
            "AWS_SECRET_ACCESS_KEY": "very-secret-value",
        }
    )
    assert (s.bucket, s.prefix, s.key("releases", "v1")) == ("b", "team/nares", "team/nares/releases/v1")
    assert s.url("releases") == "s3://b/team/nares/releases" and not s.is_local
    text = repr(s) + str(s)
    assert "very-secret-value" not in text and "AKIAEXAMPLE" not in text and "s3.example.org" in text
    remote = StoreSettings.from_env({"NARES_S3_ENDPOINT": "https://s3.example.org"})
    assert remote.access_key_id is None  # not the embedded pair: boto3's own credential chain applies


def test_put_get_verify_and_content_addressing(s3_store: ObjectStore, tmp_path: Path):
    src = _file(tmp_path / "ckpt.pt", 300_001)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    key, sha, size = s3_store.put_file(src)
    assert (sha, size) == (digest, 300_001)
    assert key == f"objects/sha256/{digest[:2]}/{digest}"
    assert s3_store.exists(key) and s3_store.verify(key, digest)
    assert s3_store.put_file(src) == (key, sha, size)  # same content: same key, nothing new
    assert s3_store.list_keys("") == [key, "staging/.keep"]  # no staged upload left behind
    out = s3_store.get_file(key, tmp_path / "back" / "ckpt.pt", digest)
    assert out.read_bytes() == src.read_bytes()
    with pytest.raises(StoreError, match="not in bucket"):
        s3_store.get_file("objects/sha256/00/" + "0" * 64, tmp_path / "x")
    # An explicit key is immutable: other content under it is refused.
    s3_store.put_bytes(b"first", "notes/a.txt")
    with pytest.raises(StoreError, match="already holds other content"):
        s3_store.put_bytes(b"second", "notes/a.txt")
    assert s3_store.get_bytes("notes/a.txt") == b"first"


def test_multipart_upload_round_trip(s3_server: LocalS3Server, tmp_path: Path):
    settings = s3_server.settings(
        bucket="multipart", multipart_threshold=5 << 20, multipart_chunksize=5 << 20
    )
    store = ObjectStore(settings)
    store.ensure_bucket()
    src = _file(tmp_path / "big.pt", (12 << 20) + 7, seed=1)  # three parts
    key, sha, size = store.put_file(src)
    assert store.verify(key, sha) and size == (12 << 20) + 7
    assert store.get_file(key, tmp_path / "big.back", sha).read_bytes() == src.read_bytes()


def test_corrupted_object_is_detected(s3_server: LocalS3Server, s3_store: ObjectStore, tmp_path: Path):
    src = _file(tmp_path / "ckpt.pt", 10_000, seed=2)
    key, sha, _ = s3_store.put_file(src)
    on_disk = _object_file(s3_server, s3_store.bucket, key)
    data = bytearray(on_disk.read_bytes())
    data[5000] ^= 0xFF  # one flipped byte on the server's disk, same size
    on_disk.write_bytes(bytes(data))
    assert not s3_store.verify(key, sha)
    with pytest.raises(CorruptObjectError, match="is corrupt"):
        s3_store.get_file(key, tmp_path / "out.pt", sha)
    assert (
        not (tmp_path / "out.pt").exists() and list(tmp_path.glob(".out.pt*")) == []
    )  # nothing half-written
    on_disk.write_bytes(bytes(data[:-10]))  # truncated: the recorded size no longer matches
    Path(f"{on_disk}.md5").unlink(missing_ok=True)
    assert not s3_store.exists(key)


def test_server_killed_mid_upload_then_restarted(tmp_path: Path):
    """Kill -9 the server while a multipart upload is under way: afterwards nothing stored earlier is lost,
    the interrupted object is not visible under its key, and the upload then succeeds."""
    state = tmp_path / "s3"
    small = _file(tmp_path / "small.pt", 50_000, seed=3)
    big = _file(tmp_path / "big.pt", 96 << 20, seed=4)
    big_sha = hashlib.sha256(big.read_bytes()).hexdigest()
    with running_s3_server(state) as server:
        port = server.port
        store = ObjectStore(server.settings(multipart_threshold=5 << 20, multipart_chunksize=5 << 20))
        store.ensure_bucket()
        small_key, small_sha, _ = store.put_file(small)
        errors: list[BaseException] = []

        def upload() -> None:
            try:
                store.put_file(big)
            except BaseException as e:  # collected and checked below
                errors.append(e)

        t = threading.Thread(target=upload)
        t.start()
        uploads = server.data_dir / "nares"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(
            p.name.isdigit() for p in uploads.rglob("*") if p.is_file()
        ):
            time.sleep(0.005)  # until the first part has landed on the server's disk
        assert server.stop(kill=True)
        killed = time.monotonic()
        t.join(120)
        assert not t.is_alive() and errors and isinstance(errors[0], StoreError)
        assert time.monotonic() - killed < 10  # the dead server is diagnosed at once, not retried for minutes
        assert "connection refused" in str(errors[0])
    with running_s3_server(state, port) as server:
        store = ObjectStore(server.settings(multipart_threshold=5 << 20, multipart_chunksize=5 << 20))
        big_key = store.content_key(big_sha)
        assert store.verify(small_key, small_sha)  # nothing lost
        assert store.head(big_key) is None and not store.exists(big_key)  # nothing half-visible
        assert store.list_keys("objects/") == [small_key]
        assert store.put_file(big) == (big_key, big_sha, 96 << 20)
        assert store.verify(big_key, big_sha)
        # The killed upload's parts are still on the server's disk; s3rver can neither list nor abort them.
        orphans = server.data_dir / "nares" / local_s3.UPLOADS_DIR
        assert len(list(orphans.iterdir())) == 1
        done = local_s3.clean_staging(store, older_than_s=0, server=server)
        assert (done.uploads, done.uploads_unchecked) == (1, None) and done.upload_bytes > 0
        assert list(orphans.iterdir()) == []
        assert store.list_keys("staging/") == ["staging/.keep"]  # only the permanent anchor
    assert not os.path.exists(state / "s3rver.pid")


def test_server_start_is_idempotent_and_data_persists(tmp_path: Path):
    src = _file(tmp_path / "a.pt", 1234, seed=5)
    with running_s3_server(tmp_path / "s3") as server:
        first = server.status()
        assert server.start()["pid"] == first["pid"]  # already running: the same process
        store = ObjectStore(server.settings())
        store.ensure_bucket()
        key, sha, _ = store.put_file(src)
        port = server.port
    assert not server.status()["running"]
    with running_s3_server(tmp_path / "s3", port) as server:
        assert ObjectStore(server.settings()).verify(key, sha)


def test_concurrent_uploads_keep_the_server_up(s3_store: ObjectStore, tmp_path: Path):
    """Parallel uploads (as a release or several ingesting workers do) all land, verified."""
    from concurrent.futures import ThreadPoolExecutor

    files = [_file(tmp_path / f"f{i}.bin", 5_000 + i, seed=100 + i) for i in range(40)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        stored = list(pool.map(lambda p: s3_store.put_file(p, key=f"rel/{p.name}"), files))
    assert all(s3_store.verify(k, sha) for k, sha, _ in stored)
    assert len(s3_store.list_keys("rel/")) == 40
