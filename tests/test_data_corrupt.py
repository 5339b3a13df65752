"""Corrupt, truncated, empty or malformed data files: one DataError line naming the file, never a traceback.

Through the readers, through `nares data info` (exit 2, one stderr line per bad file) and through
`nares train` / `nares evaluate` (exit 2 before any work). The damaged files are copies of the real
offline subset or small files generated in the official formats.
"""

from __future__ import annotations

import pickle
import shutil
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from factory.cli import main
from nares.config import load_preset
from nares.constants import CORRUPTIONS
from nares.data import (
    ImageSet,
    check_corruptions,
    iter_corruptions,
    read_cifar10_python,
    read_cifar101,
    read_corruption,
    read_npz_subset,
)
from nares.errors import DataError
from tests.test_data_readers import official_pickle, write_cifar10c
from tests.test_train_resume import ARCH


def one_line_error(call, *needles: str) -> str:
    """The message of the DataError `call()` raises; it is one line and holds each needle."""
    with pytest.raises(DataError) as e:
        call()
    msg = str(e.value)
    assert "\n" not in msg and msg
    for needle in needles:
        assert needle in msg, msg
    return msg


def cli_errors(capsys, argv: list[str]) -> tuple[list[str], str]:
    """(stderr lines, stdout) of `nares ARGV`, which must exit 2 without a traceback."""
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    lines = captured.err.strip().splitlines()
    assert all(line.startswith("nares: error: ") for line in lines), lines
    return lines, captured.out


def small_npz(path: Path, **override) -> Path:
    """A subset-format `.npz` of 20 train and 10 test images, with `override` replacing arrays."""
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8), "y_train": np.arange(20) % 10,
        "x_test": rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8), "y_test": np.arange(10),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **{**arrays, **override})
    return path


# ---- the subset .npz: damaged container -------------------------------------------------------------

def _flip(data: bytes, pos: int) -> bytes:
    b = bytearray(data)
    b[pos] ^= 0xFF
    return bytes(b)


def _npz_damages(src: bytes) -> dict[str, bytes]:
    """Damaged copies of the real subset, each hitting another part of the zip container."""
    n = len(src)
    return {
        "empty": b"",
        "truncated to 10 bytes": src[:10],
        "truncated to half": src[:n // 2],
        "last 100 bytes cut": src[:-100],
        "flip in a member's local name": _flip(src, 40),         # BadZipFile: names in directory and header differ
        "flip in the deflate stream start": _flip(src, 100),      # zlib.error
        "flip in x_train's data": _flip(src, 1000),               # BadZipFile: Bad CRC-32
        "flip in x_test's data": _flip(src, 16_000_000),
        "flip in the end record": _flip(src, n - 10),             # BadZipFile: bad magic number
        "flip in the central directory": _flip(src, n - 200),     # NotImplementedError: zip file version
    }


@pytest.fixture(scope="module")
def damaged_npz_root(tmp_path_factory, subset_npz) -> dict[str, Path]:
    """{damage: data root whose cifar10/cifar10_prefix_subset.npz is the damaged copy}."""
    base = tmp_path_factory.mktemp("damaged")
    roots = {}
    for i, (name, data) in enumerate(_npz_damages(subset_npz.read_bytes()).items()):
        root = base / f"r{i}"
        (root / "cifar10").mkdir(parents=True)
        (root / "cifar10" / "cifar10_prefix_subset.npz").write_bytes(data)
        roots[name] = root
    return roots


@pytest.mark.parametrize("damage", list(_npz_damages(bytes(20_000_000))))
def test_damaged_subset_npz_is_one_line_naming_the_file(damage, damaged_npz_root):
    path = damaged_npz_root[damage] / "cifar10" / "cifar10_prefix_subset.npz"
    msg = one_line_error(lambda: read_npz_subset(path), str(path))
    if damage == "empty":
        assert msg == f"{path} is empty (0 bytes)"
    else:
        assert "is not a readable .npz" in msg


def test_flipped_byte_in_the_real_subset_is_really_detected(subset_npz, tmp_path):
    """The CRC of each member covers its bytes: a flip inside x_train's data is an error, not other pixels."""
    info = {i.filename: i for i in zipfile.ZipFile(subset_npz).infolist()}
    x_train = info["x_train.npy"]
    assert x_train.header_offset < 1000 < x_train.header_offset + x_train.compress_size
    path = tmp_path / "s.npz"
    path.write_bytes(_flip(subset_npz.read_bytes(), 1000))
    one_line_error(lambda: read_npz_subset(path), str(path), "x_train")


# ---- the subset .npz: readable but wrong contents --------------------------------------------------

@pytest.mark.parametrize(("override", "needle"), [
    ({"y_train": (np.arange(20) % 10).astype(np.float64)}, "labels have dtype float64, expected an integer dtype"),
    ({"y_train": (np.arange(20) % 10).astype(np.float32) + 0.5}, "labels have dtype float32"),
    ({"y_test": np.full(10, True)}, "labels have dtype bool"),
    ({"y_test": np.arange(10) + 1}, "labels outside 0..9 (min 1, max 10)"),
    ({"y_train": np.arange(20) - 1}, "labels outside 0..9 (min -1, max 18)"),
    ({"y_test": np.arange(9)}, "9 labels for 10 images"),
    ({"y_test": np.zeros((10, 1), np.int64)}, "labels have shape (10, 1)"),
    ({"x_test": np.zeros((10, 32, 32, 3), np.float32)}, "images have shape (10, 32, 32, 3) float32"),
    ({"x_test": np.zeros((10, 3, 32, 32), np.uint8)}, "images have shape (10, 3, 32, 32) uint8"),
    ({"x_test": np.zeros((0, 32, 32, 3), np.uint8), "y_test": np.zeros(0, np.int64)}, "holds no images"),
])
def test_subset_contents_are_checked(tmp_path, override, needle):
    path = small_npz(tmp_path / "s.npz", **override)
    one_line_error(lambda: read_npz_subset(path), str(path), needle)


def test_integer_labels_of_any_width_are_read_as_int64(tmp_path):
    path = small_npz(tmp_path / "s.npz", y_train=(np.arange(20) % 10).astype(np.uint8),
                     y_test=np.arange(10, dtype=np.int32))
    s = read_npz_subset(path)
    assert s["train"][1].dtype == np.int64 and s["train"][1].tolist() == [i % 10 for i in range(20)]
    assert s["test"][1].tolist() == list(range(10))


def test_npy_file_named_npz_is_refused(tmp_path):
    path = tmp_path / "s.npz"
    with open(path, "wb") as fh:
        np.save(fh, np.zeros(3))
    one_line_error(lambda: read_npz_subset(path), str(path), "holds a single array, not a .npz archive")


def test_imageset_refuses_float_labels():
    with pytest.raises(DataError, match="h: labels have dtype float64"):
        ImageSet.from_hwc(np.zeros((2, 32, 32, 3), np.uint8), np.array([1.0, 2.0]), "h")


# ---- CIFAR-10-C --------------------------------------------------------------------------------------

PER = 12  # images per severity in the generated folders


@pytest.fixture
def c10c(tmp_path) -> Path:
    """A data root with a complete, valid generated CIFAR-10-C folder."""
    write_cifar10c(tmp_path / "cifar10-c", per=PER)
    return tmp_path


def _save(path: Path, arr: np.ndarray) -> None:
    with open(path, "wb") as fh:
        np.save(fh, arr)


def test_generated_cifar10c_passes_every_check(c10c):
    check_corruptions(c10c)
    x, y = read_corruption(c10c / "cifar10-c", "fog")
    assert isinstance(x, np.memmap) and x.shape == (5 * PER, 32, 32, 3) and y.dtype == np.int64


@pytest.mark.parametrize(("damage", "needle"), [
    ("empty", "fog.npy is empty (0 bytes)"),
    ("truncated", "fog.npy has 184192 bytes, but its header describes (60, 32, 32, 3) uint8 (184448 bytes): "
                  "the file is truncated"),
    ("padded", "the file is padded"),
    ("header only", "fog.npy has 128 bytes"),
    ("not npy", "fog.npy is not a readable .npy (ValueError"),
    ("flipped header", "fog.npy is not a readable .npy"),
    ("wrong shape", "fog.npy: images have shape (60, 32, 32) uint8"),
    ("wrong dtype", "fog.npy: images have shape (60, 32, 32, 3) int16"),
    ("fewer rows", "fog.npy: 55 images, but labels.npy has 60 labels"),
])
def test_bad_corruption_file_is_one_line_naming_it(c10c, damage, needle):
    f = c10c / "cifar10-c" / "fog.npy"
    raw = f.read_bytes()
    assert len(raw) == 128 + 5 * PER * 3072
    match damage:
        case "empty":
            f.write_bytes(b"")
        case "truncated":
            f.write_bytes(raw[:-256])
        case "padded":
            f.write_bytes(raw + b"\0" * 3072)
        case "header only":
            f.write_bytes(raw[:128])
        case "not npy":
            f.write_bytes(b"<html>not found</html>")
        case "flipped header":
            f.write_bytes(_flip(raw, 60))
        case "wrong shape":
            _save(f, np.zeros((5 * PER, 32, 32), np.uint8))
        case "wrong dtype":
            _save(f, np.zeros((5 * PER, 32, 32, 3), np.int16))
        case "fewer rows":
            _save(f, np.zeros((5 * PER - 5, 32, 32, 3), np.uint8))
    one_line_error(lambda: read_corruption(c10c / "cifar10-c", "fog"), str(f), needle)
    one_line_error(lambda: check_corruptions(c10c), str(f))


def _labels(per: int = PER) -> np.ndarray:
    return np.tile(np.arange(per) % 10, 5).astype(np.uint8)


@pytest.mark.parametrize(("labels", "needle"), [
    (np.where(np.arange(5 * PER) % PER == 3, 10, _labels()).astype(np.uint8), "labels outside 0..9 (min 0, max 10)"),
    (np.where(np.arange(5 * PER) % PER == 0, -1, _labels()).astype(np.int8), "labels outside 0..9 (min -1, max 9)"),
    (_labels().astype(np.float32), "labels have dtype float32, expected an integer dtype"),
    (_labels()[:-1], "59 labels, expected 5 severities × n with n ≤ 10000"),
    (np.tile(np.arange(10_001) % 10, 5).astype(np.uint8), "50005 labels, expected 5 severities × n with n ≤ 10000"),
    (np.concatenate([_labels()[:4 * PER], (np.arange(PER) + 1) % 10]).astype(np.uint8),
     "the labels of severity 5 differ from those of severity 1"),
    (np.zeros(0, np.uint8), "holds no labels"),
    (_labels().reshape(5, PER), "labels have shape (5, 12)"),
])
def test_bad_cifar10c_labels_are_one_line_naming_the_file(c10c, labels, needle):
    f = c10c / "cifar10-c" / "labels.npy"
    _save(f, labels)
    one_line_error(lambda: read_corruption(c10c / "cifar10-c", "fog"), str(f), needle)
    with pytest.raises(DataError, match="labels.npy"):
        next(iter_corruptions(c10c))


def test_empty_labels_file(c10c):
    f = c10c / "cifar10-c" / "labels.npy"
    f.write_bytes(b"")
    assert one_line_error(lambda: check_corruptions(c10c)) == f"{f} is empty (0 bytes)"


def test_every_corruption_file_is_checked_before_the_first_cell(c10c):
    last = c10c / "cifar10-c" / f"{CORRUPTIONS[-1]}.npy"
    last.write_bytes(last.read_bytes()[:1000])
    cells = iter_corruptions(c10c, limit=2)
    one_line_error(lambda: next(cells), str(last), "truncated")


def test_corrupt_labels_fail_the_corruption_cell_instead_of_an_index_error(c10c, monkeypatch):
    """A label ≥ 10 used to reach the loss (IndexError in the middle of `nares evaluate`)."""
    from nares.evaluate.metrics import corruption_cell
    from nares.spaces.wrn import build_model

    f = c10c / "cifar10-c" / "labels.npy"
    _save(f, np.where(np.arange(5 * PER) == 7, 12, _labels()).astype(np.uint8))
    monkeypatch.setenv("NARES_DATA_DIR", str(c10c))
    cfg = load_preset("tiny")
    cfg["data"]["corruption_limit"] = 2
    model = build_model(ARCH, width_base=cfg["model"]["width_base"]).eval()
    one_line_error(lambda: corruption_cell(model, cfg, torch.device("cpu"), False), str(f), "max 12")


# ---- CIFAR-10.1 --------------------------------------------------------------------------------------

@pytest.fixture
def c101(tmp_path, data_dir) -> Path:
    """CIFAR-10.1-format folder: generated images with the real labels file."""
    folder = tmp_path / "cifar10.1"
    folder.mkdir()
    _save(folder / "cifar10.1_v6_data.npy", np.zeros((2000, 32, 32, 3), np.uint8))
    shutil.copy(data_dir / "cifar10.1" / "cifar10.1_v6_labels.npy", folder)
    return folder


def test_real_cifar101_labels_are_int32_and_read(c101):
    assert np.load(c101 / "cifar10.1_v6_labels.npy").dtype == np.int32  # the official file's dtype
    x, y = read_cifar101(c101, verify=False)
    assert x.shape == (2000, 32, 32, 3) and y.dtype == np.int64 and np.bincount(y).tolist() == [200] * 10


@pytest.mark.parametrize(("name", "content", "needle"), [
    ("cifar10.1_v6_labels.npy", (np.arange(2000) % 10).astype(np.float64), "labels have dtype float64"),
    ("cifar10.1_v6_labels.npy", np.arange(2000) % 11, "labels outside 0..9 (min 0, max 10)"),
    ("cifar10.1_v6_labels.npy", np.arange(1999) % 10, "1999 labels for the 2000 images of cifar10.1_v6_data.npy"),
    ("cifar10.1_v6_data.npy", b"", "is empty (0 bytes)"),
    ("cifar10.1_v6_data.npy", "truncate", "the file is truncated"),
    ("cifar10.1_v6_data.npy", np.zeros((2000, 32, 32, 3), np.float64), "images have shape (2000, 32, 32, 3) float64"),
])
def test_bad_cifar101_file_is_one_line_naming_it(c101, name, content, needle):
    f = c101 / name
    if isinstance(content, bytes):
        f.write_bytes(content)
    elif isinstance(content, str):
        f.write_bytes(f.read_bytes()[:5000])
    else:
        _save(f, content)
    one_line_error(lambda: read_cifar101(c101, verify=False), str(f), needle)


def test_empty_cifar101_file_is_named_before_its_checksum(c101):
    f = c101 / "cifar10.1_v6_labels.npy"
    f.write_bytes(b"")
    assert one_line_error(lambda: read_cifar101(c101)) == f"{f} is empty (0 bytes)"


# ---- CIFAR-10 python batches -------------------------------------------------------------------------

def _batches(folder: Path, test_batch: bytes) -> Path:
    folder.mkdir(parents=True)
    (folder / "test_batch").write_bytes(test_batch)
    return folder


def test_float_labels_in_a_batch_are_refused_not_truncated(tmp_path):
    raw = pickle.dumps({b"data": np.zeros((3, 3072), np.uint8), b"labels": [1.0, 2.7, 3.0]}, protocol=2)
    folder = _batches(tmp_path / "b", raw)
    one_line_error(lambda: read_cifar10_python(folder, "test", verify=False), str(folder / "test_batch"),
                   "labels have dtype float64")


@pytest.mark.parametrize(("content", "needle"), [
    (b"", "test_batch is empty (0 bytes)"),
    ("half", "is not a CIFAR-10 python batch (UnpicklingError"),
    (pickle.dumps({b"data": np.zeros((3, 3072), np.uint8), b"labels": [1, 2]}, protocol=2), "2 labels for 3 images"),
    (pickle.dumps({b"data": np.zeros((3, 3072), np.uint8), b"labels": [1, 2, 10]}, protocol=2), "max 10"),
    (pickle.dumps({b"data": [[0] * 3072], b"labels": [1]}, protocol=2), "b'data' is list, expected a (N, 3072) uint8"),
])
def test_bad_batch_file_is_one_line_naming_it(tmp_path, content, needle):
    if content == "half":
        content = official_pickle(np.zeros((4, 32, 32, 3), np.uint8), np.arange(4), b"testing batch 1 of 1")[:6000]
    folder = _batches(tmp_path / "b", content)
    one_line_error(lambda: read_cifar10_python(folder, "test", verify=False), str(folder / "test_batch"), needle)


def test_damaged_tarball_is_one_line_naming_it(tmp_path):
    folder = _batches(tmp_path / "src" / "cifar-10-batches-py",
                      official_pickle(np.zeros((40, 32, 32, 3), np.uint8), np.arange(40) % 10, b"testing batch 1 of 1"))
    tgz = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(folder / "test_batch", arcname="cifar-10-batches-py/test_batch")
    assert read_cifar10_python(tgz, "test", verify=False)[1].tolist() == [i % 10 for i in range(40)]
    raw = tgz.read_bytes()
    for damaged in (raw[: len(raw) // 2], _flip(raw, len(raw) // 2)):
        tgz.write_bytes(damaged)
        one_line_error(lambda: read_cifar10_python(tgz, "test", verify=False), str(tgz))
    tgz.write_bytes(b"")
    assert one_line_error(lambda: read_cifar10_python(tgz, "test")) == f"{tgz} is empty (0 bytes)"


# ---- nares data info ---------------------------------------------------------------------------------

def test_info_on_the_real_data_root_exits_0(data_dir, capsys):
    """Absent optional files (full CIFAR-10, CIFAR-10.1 images, CIFAR-10-C) are no error."""
    assert main(["data", "info", "--root", str(data_dir)]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    rows = {line.split()[0]: line.split()[1] for line in captured.out.splitlines()[1:]}
    assert rows == {"cifar10": "missing", "cifar10-subset": "ok", "cifar10.1": "incomplete", "cifar10-c": "missing"}


@pytest.mark.parametrize("damage", ["empty", "truncated to half", "flip in x_train's data"])
def test_info_reports_a_damaged_subset_and_exits_2(damage, damaged_npz_root, capsys):
    root = damaged_npz_root[damage]
    path = root / "cifar10" / "cifar10_prefix_subset.npz"
    err, out = cli_errors(capsys, ["data", "info", "--root", str(root)])
    assert len(err) == 1 and str(path) in err[0]
    row = next(line for line in out.splitlines() if line.startswith("cifar10-subset"))
    assert row.split()[1] == "corrupt" and err[0].removeprefix("nares: error: ") in row


def test_info_lists_each_bad_file_on_its_own_line(c10c, capsys):
    folder = c10c / "cifar10-c"
    (folder / "fog.npy").write_bytes(b"")
    (folder / "snow.npy").write_bytes((folder / "snow.npy").read_bytes()[:-1])
    small_npz(c10c / "cifar10" / "cifar10_prefix_subset.npz", y_test=np.arange(10) + 5)
    err, out = cli_errors(capsys, ["data", "info", "--root", str(c10c)])
    subset = c10c / "cifar10" / "cifar10_prefix_subset.npz"
    assert err == [
        f"nares: error: {subset}:test: labels outside 0..9 (min 5, max 14)",
        f"nares: error: {folder / 'snow.npy'} has 184447 bytes, but its header describes (60, 32, 32, 3) uint8 "
        "(184448 bytes): the file is truncated",
        f"nares: error: {folder / 'fog.npy'} is empty (0 bytes)",
    ]
    rows = {line.split()[0]: line.split()[1] for line in out.splitlines()[1:]}
    assert rows["cifar10-c"] == "corrupt" and rows["cifar10-subset"] == "corrupt"
    assert "(and 1 more bad files)" in out


def test_info_reports_out_of_range_cifar10c_labels(c10c, capsys):
    """These labels used to pass `data info` as ok."""
    f = c10c / "cifar10-c" / "labels.npy"
    _save(f, np.where(np.arange(5 * PER) % PER == 0, 10, _labels()).astype(np.uint8))
    err, _ = cli_errors(capsys, ["data", "info", "--root", str(c10c)])
    assert err == [f"nares: error: {f}: labels outside 0..9 (min 0, max 10)"]


def test_info_checks_the_present_files_of_an_incomplete_set(c10c, capsys):
    folder = c10c / "cifar10-c"
    (folder / "fog.npy").unlink()
    assert main(["data", "info", "--root", str(c10c)]) == 0  # an absent file: incomplete, no error
    assert "incomplete" in capsys.readouterr().out
    (folder / "snow.npy").write_bytes(b"")
    err, _ = cli_errors(capsys, ["data", "info", "--root", str(c10c)])
    assert err == [f"nares: error: {folder / 'snow.npy'} is empty (0 bytes)"]


# ---- nares train / nares evaluate --------------------------------------------------------------------

@pytest.mark.parametrize("damage", ["empty", "truncated to half", "flip in the deflate stream start"])
def test_train_fails_in_one_line_before_any_work(damage, damaged_npz_root, tmp_path, monkeypatch, capsys):
    root = damaged_npz_root[damage]
    monkeypatch.setenv("NARES_DATA_DIR", str(root))
    out = tmp_path / "run"
    err, stdout = cli_errors(capsys, ["train", ARCH, "--preset", "tiny", "--out", str(out), "--device", "cpu", "--quiet"])
    assert err == [f"nares: error: {read_error(root / 'cifar10' / 'cifar10_prefix_subset.npz')}"]
    assert stdout == "" and not (out / "checkpoints").exists() and not (out / "state").exists()


def test_train_refuses_float_labels(tmp_path, monkeypatch, capsys):
    """Float labels used to be truncated to int and trained on."""
    path = small_npz(tmp_path / "data" / "cifar10" / "cifar10_prefix_subset.npz",
                     y_train=(np.arange(20) % 10).astype(np.float64) + 0.9)
    monkeypatch.setenv("NARES_DATA_DIR", str(tmp_path / "data"))
    err, _ = cli_errors(capsys, ["train", ARCH, "--preset", "tiny", "--out", str(tmp_path / "run"), "--quiet"])
    assert err == [f"nares: error: {path}:train: labels have dtype float64, expected an integer dtype (class indices 0..9)"]


def read_error(path: Path) -> str:
    with pytest.raises(DataError) as e:
        read_npz_subset(path)
    return str(e.value)


def test_evaluate_fails_on_bad_cifar10c_labels_before_any_work(c10c, tmp_path, monkeypatch, capsys):
    f = c10c / "cifar10-c" / "labels.npy"
    _save(f, np.where(np.arange(5 * PER) == 3, 11, _labels()).astype(np.uint8))
    monkeypatch.setenv("NARES_DATA_DIR", str(c10c))
    run = tmp_path / "run"
    run.mkdir()
    err, _ = cli_errors(capsys, ["evaluate", str(run), "--preset", "tiny", "--device", "cpu"])
    assert err == [f"nares: error: {f}: labels outside 0..9 (min 0, max 11)"]
    assert list(run.iterdir()) == []
    # a subset of metrics without the corruptions does not need CIFAR-10-C
    err, _ = cli_errors(capsys, ["evaluate", str(run), "--preset", "tiny", "--metrics", "clean"])
    assert "no finished training run" in err[0]
