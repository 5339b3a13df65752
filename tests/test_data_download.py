"""Downloads against a real local HTTP server (127.0.0.1): resume after a cut connection, corruption, unpacking."""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from factory.cli import main
from nares.constants import CORRUPTIONS
from nares.data import corruptions_available, download_file, fetch, fetch_remote, iter_corruptions
from nares.data.sources import (
    CIFAR10_BATCH_MD5,
    CIFAR10_TARBALL_MD5,
    CIFAR101_MD5,
    REMOTES,
    Remote,
    RemoteFile,
    Unpack,
)
from nares.errors import DataError

pytestmark = pytest.mark.services


class FileServer:
    """Serves `files` with HTTP Range support; `cut[name] = n` drops the next response for name after n bytes."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut: dict[str, int] = {}
        self.ignore_range: set[str] = set()
        self.requests: list[tuple[str, str | None]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                name = self.path.lstrip("/")
                rng = self.headers.get("Range")
                owner.requests.append((name, rng))
                if name not in owner.files:
                    self.send_error(404)
                    return
                data, start = owner.files[name], 0
                if rng and name not in owner.ignore_range:
                    start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1))
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                cut = owner.cut.pop(name, None)
                self.wfile.write(body if cut is None else body[:cut])
                self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> FileServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def server():
    with FileServer() as s:
        yield s


def payload(n: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def test_interrupted_download_resumes_on_the_next_call(server, tmp_path):
    data = payload(300_000)
    server.files["f.bin"] = data
    server.cut["f.bin"] = 100_000
    dest = tmp_path / "f.bin"
    with pytest.raises(DataError, match=r"stopped at 100000 bytes .*run the same command again to resume"):
        download_file(f"{server.url}/f.bin", dest, md5=md5(data), size=len(data), retries=0)
    assert not dest.exists() and (tmp_path / "f.bin.partial").stat().st_size == 100_000
    seen: list[tuple[int, int | None]] = []
    download_file(f"{server.url}/f.bin", dest, md5=md5(data), size=len(data), retries=0,
                  progress=lambda name, done, total: seen.append((done, total)))
    assert dest.read_bytes() == data and not (tmp_path / "f.bin.partial").exists()
    assert server.requests == [("f.bin", None), ("f.bin", "bytes=100000-")]
    assert seen[-1] == (300_000, 300_000) and seen[0][0] > 100_000  # counted from the resumed offset


def test_cut_connection_is_retried_within_one_call(server, tmp_path):
    data = payload(200_000, seed=1)
    server.files["g.bin"] = data
    server.cut["g.bin"] = 70_000
    out = download_file(f"{server.url}/g.bin", tmp_path / "g.bin", md5=md5(data), retries=1, backoff_s=0)
    assert out.read_bytes() == data
    assert [r for _, r in server.requests] == [None, "bytes=70000-"]


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    data = payload(50_000, seed=2)
    server.files["h.bin"] = data
    server.ignore_range.add("h.bin")
    (tmp_path / "h.bin.partial").write_bytes(b"x" * 20_000)
    download_file(f"{server.url}/h.bin", tmp_path / "h.bin", md5=md5(data), retries=0)
    assert (tmp_path / "h.bin").read_bytes() == data and server.requests == [("h.bin", "bytes=20000-")]


def test_complete_partial_answered_416_is_verified_and_kept(server, tmp_path):
    data = payload(10_000, seed=3)
    server.files["k.bin"] = data
    (tmp_path / "k.bin.partial").write_bytes(data)
    download_file(f"{server.url}/k.bin", tmp_path / "k.bin", md5=md5(data), retries=0)
    assert (tmp_path / "k.bin").read_bytes() == data and server.requests == [("k.bin", "bytes=10000-")]


def test_corrupt_download_names_file_and_both_checksums(server, tmp_path):
    good, bad = payload(40_000, seed=4), payload(40_000, seed=5)
    server.files["c.bin"] = bad
    with pytest.raises(DataError) as e:
        download_file(f"{server.url}/c.bin", tmp_path / "c.bin", md5=md5(good), size=40_000, retries=0)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("c.bin downloaded from ")
    assert f"expected md5 {md5(good)} (40000 bytes), got {md5(bad)} (40000 bytes)" in msg
    assert list(tmp_path.iterdir()) == []  # nothing half-written is left behind


def test_http_errors_and_unknown_dataset(server, tmp_path):
    with pytest.raises(DataError, match=r"cannot download http://127.0.0.1:\d+/nope: HTTP 404"):
        download_file(f"{server.url}/nope", tmp_path / "nope", md5="0" * 32, retries=0)
    with pytest.raises(DataError, match="unknown dataset 'mnist'; fetchable: cifar10, cifar10.1, cifar10-c"):
        fetch("mnist", tmp_path)


def test_official_cifar10_checksum_rejects_a_wrong_tarball(server, tmp_path):
    server.files["cifar-10-python.tar.gz"] = fake = payload(1000, seed=6)
    with pytest.raises(DataError, match=rf"cifar-10-python.tar.gz downloaded from .* is corrupt: expected md5 "
                                        rf"{CIFAR10_TARBALL_MD5} \(170498071 bytes\), got {md5(fake)} \(1000 bytes\)"):
        fetch("cifar10", tmp_path, mirror=server.url)
    assert not (tmp_path / "cifar10" / "cifar-10-python.tar.gz").exists()


def cifar10c_tar(per: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        def add(name: str, arr: np.ndarray) -> None:
            b = io.BytesIO()
            np.save(b, arr)
            info = tarfile.TarInfo(f"CIFAR-10-C/{name}")
            info.size = len(b.getvalue())
            tar.addfile(info, io.BytesIO(b.getvalue()))
        add("labels.npy", np.tile(np.arange(per) % 10, 5).astype(np.uint8))
        for ci, name in enumerate(CORRUPTIONS):
            add(f"{name}.npy", np.repeat(np.arange(5, dtype=np.uint8) * 20 + ci, per)[:, None, None, None]
                * np.ones((1, 32, 32, 3), np.uint8))
    return buf.getvalue()


def test_fetch_unpacks_an_archive_flat_and_is_idempotent(server, tmp_path):
    tar = cifar10c_tar(per=3)
    server.files["CIFAR-10-C.tar"] = tar
    server.cut["CIFAR-10-C.tar"] = len(tar) // 2
    remote = Remote("cifar10-c", "cifar10-c", (RemoteFile("unused", "CIFAR-10-C.tar", md5(tar)),),
                    Unpack("CIFAR-10-C/", "", keep_archive=False,
                           expected=(*(f"{c}.npy" for c in CORRUPTIONS), "labels.npy")))
    with pytest.raises(DataError, match="run the same command again to resume"):  # an earlier, interrupted run
        download_file(f"{server.url}/CIFAR-10-C.tar", tmp_path / "cifar10-c" / "CIFAR-10-C.tar", md5=md5(tar), retries=0)
    folder = fetch_remote(remote, tmp_path, mirror=server.url)
    assert folder == tmp_path / "cifar10-c" and corruptions_available(tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == sorted([".fetch.lock", "labels.npy", *(f"{c}.npy" for c in CORRUPTIONS)])
    cells = {(n, s): imgs for n, s, imgs in iter_corruptions(tmp_path)}
    assert int(cells[("fog", 4)].x[2, 0, 0, 0]) == 3 * 20 + CORRUPTIONS.index("fog")
    n_requests = len(server.requests)
    fetch_remote(remote, tmp_path, mirror=server.url)
    assert len(server.requests) == n_requests == 2 and server.requests[-1][1] == f"bytes={len(tar) // 2}-"


def test_cifar10_unpack_spec_builds_the_batches_folder_and_keeps_the_tarball(server, tmp_path):
    spec = REMOTES["cifar10"].unpack
    members = {name: payload(100 + i, seed=i) for i, name in enumerate(CIFAR10_BATCH_MD5)}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for name, body in {**members, "readme.html": b"<html/>"}.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(body)
            t.addfile(info, io.BytesIO(body))
    server.files["cifar-10-python.tar.gz"] = tgz = buf.getvalue()
    stale = tmp_path / "cifar10" / "cifar-10-batches-py"
    stale.mkdir(parents=True)
    (stale / "data_batch_1").write_bytes(b"left over by an interrupted extraction")
    remote = Remote("cifar10", "cifar10", (RemoteFile("unused", "cifar-10-python.tar.gz", md5(tgz)),), spec)
    folder = fetch_remote(remote, tmp_path, mirror=server.url)
    for name, body in members.items():
        assert (folder / "cifar-10-batches-py" / name).read_bytes() == body
    assert (folder / "cifar-10-batches-py" / "readme.html").exists()
    assert (folder / "cifar-10-python.tar.gz").read_bytes() == tgz
    assert not [p for p in folder.iterdir() if p.name.startswith(".unpack-")]


def test_unsafe_archive_member_is_refused(server, tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        info = tarfile.TarInfo("CIFAR-10-C/../../evil.npy")
        info.size = 1
        t.addfile(info, io.BytesIO(b"x"))
    server.files["a.tar"] = buf.getvalue()
    remote = Remote("x", "x", (RemoteFile("unused", "a.tar", md5(buf.getvalue())),),
                    Unpack("CIFAR-10-C/", "", keep_archive=False, expected=("labels.npy",)))
    with pytest.raises(DataError, match=r"unsafe member path 'CIFAR-10-C/../../evil.npy'"):
        fetch_remote(remote, tmp_path, mirror=server.url)
    assert not (tmp_path.parent / "evil.npy").exists()
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == [".fetch.lock", "a.tar"]


def test_cli_fetch_reports_a_corrupt_file_in_one_line(server, tmp_path, data_dir, capsys):
    server.files["cifar10.1_v6_data.npy"] = fake = payload(2000, seed=7)
    server.files["cifar10.1_v6_labels.npy"] = (data_dir / "cifar10.1" / "cifar10.1_v6_labels.npy").read_bytes()
    assert main(["data", "fetch", "cifar10.1", "--root", str(tmp_path), "--mirror", server.url]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    expected = CIFAR101_MD5["cifar10.1_v6_data.npy"]
    assert err.startswith("nares: error: cifar10.1_v6_data.npy downloaded from ")
    assert f"expected md5 {expected}, got {md5(fake)}" in err


def test_cli_info_lists_what_is_present(data_dir, tmp_path, capsys):
    (tmp_path / "cifar10" / "cifar-10-batches-py").mkdir(parents=True)
    (tmp_path / "cifar10" / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"not a batch")
    shutil.copy(data_dir / "cifar10" / "cifar10_prefix_subset.npz", tmp_path / "cifar10")
    (tmp_path / "cifar10.1").mkdir()
    shutil.copy(data_dir / "cifar10.1" / "cifar10.1_v6_labels.npy", tmp_path / "cifar10.1")
    assert main(["data", "info", "--root", str(tmp_path)]) == 2  # a present file is corrupt
    captured = capsys.readouterr()
    bad = tmp_path / "cifar10" / "cifar-10-batches-py" / "data_batch_1"
    assert captured.err.splitlines() == [f"nares: error: {bad} is corrupt: expected md5 c99cafc152244af753f735de768cd75f, "
                                         f"got {md5(b'not a batch')}; delete it and run `nares data fetch cifar10`"]
    out = captured.out.splitlines()
    assert out[0] == f"data root: {tmp_path}"
    rows = {line.split()[0]: line.split(maxsplit=3)[1:] for line in out[1:]}
    assert rows["cifar10"][0] == "corrupt" and "expected md5 c99cafc152244af753f735de768cd75f" in rows["cifar10"][2]
    assert rows["cifar10-subset"][0] == "ok" and rows["cifar10-subset"][2] == "train 5438, test 1017"
    assert rows["cifar10.1"][0] == "incomplete" and rows["cifar10-c"][0] == "missing"
