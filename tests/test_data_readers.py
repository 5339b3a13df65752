"""Readers of the CIFAR formats, on the real offline subset and on files generated in the official layouts."""

from __future__ import annotations

import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from nares.constants import CORRUPTIONS
from nares.data import (
    ImageSet,
    corruptions_available,
    iter_corruptions,
    read_cifar10_python,
    read_cifar101,
    read_npz_subset,
)
from nares.data.sources import CIFAR10_BATCH_MD5, CIFAR10_TARBALL_MD5, CIFAR101_MD5
from nares.errors import DataError

FIRST_TEST_LABELS = [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]


def official_pickle(x_hwc: np.ndarray, y: np.ndarray, label: bytes) -> bytes:
    """A batch pickled as the official files are: b"data" rows (N, 3072) uint8 in CHW order, b"labels" list."""
    rows = np.ascontiguousarray(x_hwc.transpose(0, 3, 1, 2)).reshape(len(x_hwc), 3072)
    return pickle.dumps({
        b"batch_label": label,
        b"labels": [int(v) for v in y],
        b"data": rows,
        b"filenames": [f"img_{i}.png".encode() for i in range(len(y))],
    }, protocol=2)


@pytest.fixture(scope="module")
def subset(subset_npz: Path) -> dict[str, np.ndarray]:
    with np.load(subset_npz) as z:
        return {k: z[k] for k in ("x_train", "y_train", "idx_train", "x_test", "y_test")}


@pytest.fixture(scope="module")
def official_dir(tmp_path_factory, subset, data_dir: Path) -> Path:
    """`cifar-10-batches-py/` generated from the subset: batch k holds the subset rows that came from batch k."""
    folder = tmp_path_factory.mktemp("c10") / "cifar-10-batches-py"
    folder.mkdir()
    batch_of = subset["idx_train"] // 10000
    for k in range(5):
        m = batch_of == k
        (folder / f"data_batch_{k + 1}").write_bytes(
            official_pickle(subset["x_train"][m], subset["y_train"][m], f"training batch {k + 1} of 5".encode()))
    (folder / "test_batch").write_bytes(official_pickle(subset["x_test"], subset["y_test"], b"testing batch 1 of 1"))
    (folder / "batches.meta").write_bytes((data_dir / "cifar10" / "batches.meta").read_bytes())
    return folder


@pytest.fixture(scope="module")
def official_tar(official_dir: Path) -> Path:
    path = official_dir.parent / "cifar-10-python.tar.gz"
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for f in sorted(official_dir.iterdir()):
            tar.add(f, arcname=f"cifar-10-batches-py/{f.name}")
    return path


def test_subset_npz_real_values(subset_npz):
    s = read_npz_subset(subset_npz)
    x, y = s["test"]
    assert x.shape == (1017, 32, 32, 3) and x.dtype == np.uint8 and y.dtype == np.int64
    assert y[:10].tolist() == FIRST_TEST_LABELS
    assert s["train"][0].shape == (5438, 32, 32, 3)
    assert np.bincount(s["test"][1], minlength=10).sum() == 1017


def test_real_batches_meta_has_the_official_md5(data_dir):
    import hashlib

    assert hashlib.md5((data_dir / "cifar10" / "batches.meta").read_bytes()).hexdigest() == CIFAR10_BATCH_MD5["batches.meta"]


@pytest.mark.parametrize("form", ["dir", "tar"])
def test_official_python_format_reads_back_identically(form, official_dir, official_tar, subset):
    path = official_dir if form == "dir" else official_tar
    for split in ("train", "test"):
        x, y = read_cifar10_python(path, split, verify=False)
        assert x.dtype == np.uint8 and y.dtype == np.int64 and x.flags.c_contiguous
        np.testing.assert_array_equal(x, subset[f"x_{split}"])
        np.testing.assert_array_equal(y, subset[f"y_{split}"])
    # the CHW rows became HWC: pixel (row 0, col 1) of image 0 is bytes 1, 1025, 2049 of its row
    raw = pickle.loads((official_dir / "test_batch").read_bytes(), encoding="bytes")[b"data"][0]
    x, _ = read_cifar10_python(path, "test", verify=False)
    assert x[0, 0, 1].tolist() == [raw[1], raw[1025], raw[2049]]


def test_md5_mismatch_names_file_and_expected_checksum(official_dir, official_tar):
    with pytest.raises(DataError) as e:
        read_cifar10_python(official_dir, "train")
    msg = str(e.value)
    assert "\n" not in msg
    assert str(official_dir / "data_batch_1") in msg and CIFAR10_BATCH_MD5["data_batch_1"] in msg
    with pytest.raises(DataError, match=f"{official_tar}.*expected md5 {CIFAR10_TARBALL_MD5}"):
        read_cifar10_python(official_tar, "test")


def test_missing_batch_and_bad_split(official_dir, tmp_path):
    with pytest.raises(DataError, match="split 'val' is not one of train, test"):
        read_cifar10_python(official_dir, "val")
    with pytest.raises(DataError, match=r"data_batch_1 is missing; `nares data fetch cifar10`"):
        read_cifar10_python(tmp_path, "train")


def test_batches_pickled_by_numpy_1_read_too(tmp_path, subset):
    """The official files name `numpy.core.multiarray._reconstruct` (numpy 1.x); numpy 2 writes `numpy._core`."""
    raw = official_pickle(subset["x_test"][:5], subset["y_test"][:5], b"testing batch 1 of 1")
    assert b"numpy._core.multiarray" in raw
    (tmp_path / "test_batch").write_bytes(raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    x, y = read_cifar10_python(tmp_path, "test", verify=False)
    np.testing.assert_array_equal(x, subset["x_test"][:5])
    assert y.tolist() == FIRST_TEST_LABELS[:5]


def test_unpickler_refuses_foreign_globals(tmp_path):
    folder = tmp_path / "b"
    folder.mkdir()
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": os.getcwd}, protocol=2))
    with pytest.raises(DataError, match="refusing to unpickle posix.getcwd"):
        read_cifar10_python(folder, "test", verify=False)


def test_cifar101_reader_and_checksums(tmp_path, data_dir):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (2000, 32, 32, 3), dtype=np.uint8)
    np.save(tmp_path / "cifar10.1_v6_data.npy", x)
    real_labels = data_dir / "cifar10.1" / "cifar10.1_v6_labels.npy"
    (tmp_path / "cifar10.1_v6_labels.npy").write_bytes(real_labels.read_bytes())
    xr, yr = read_cifar101(tmp_path, verify=False)
    np.testing.assert_array_equal(xr, x)
    assert yr.dtype == np.int64 and np.bincount(yr).tolist() == [200] * 10
    # the real labels file passes its md5; the generated data file fails with the published md5 named
    with pytest.raises(DataError, match=f"cifar10.1_v6_data.npy is corrupt: expected md5 {CIFAR101_MD5['cifar10.1_v6_data.npy']}"):
        read_cifar101(tmp_path)


def write_cifar10c(folder: Path, per: int, names=CORRUPTIONS) -> np.ndarray:
    """Generated CIFAR-10-C files: pixel value = 10·severity + corruption index (mod 256), row index in [0,0,0]."""
    folder.mkdir(parents=True, exist_ok=True)
    labels = np.tile(np.arange(per) % 10, 5).astype(np.uint8)
    np.save(folder / "labels.npy", labels)
    for ci, name in enumerate(names):
        x = np.empty((5 * per, 32, 32, 3), np.uint8)
        for s in range(5):
            x[s * per:(s + 1) * per] = 10 * (s + 1) + ci
        x[:, 0, 0, 0] = np.arange(5 * per) % 256
        np.save(folder / f"{name}.npy", x)
    return labels


def test_cifar10c_cells_pick_the_right_rows(tmp_path):
    root = tmp_path
    assert not corruptions_available(root)
    write_cifar10c(root / "cifar10-c", per=12)
    assert corruptions_available(root)
    cells = list(iter_corruptions(root, names=("shot_noise", "fog"), severities=(2, 5), limit=7))
    assert [(n, s) for n, s, _ in cells] == [("shot_noise", 2), ("shot_noise", 5), ("fog", 2), ("fog", 5)]
    for name, s, imgs in cells:
        assert isinstance(imgs, ImageSet) and len(imgs) == 7 and imgs.x.shape == (7, 3, 32, 32)
        assert imgs.name == f"cifar10-c/{name}/{s}"
        assert int(imgs.x[0, 1, 5, 5]) == 10 * s + CORRUPTIONS.index(name)
        assert imgs.x[:, 0, 0, 0].tolist() == list(range(12 * (s - 1), 12 * (s - 1) + 7))
        assert imgs.y.tolist() == [i % 10 for i in range(7)]
    assert sum(1 for _ in iter_corruptions(root)) == 95
    with pytest.raises(DataError, match="corruption 'rain' is not one of"):
        next(iter_corruptions(root, names=("rain",)))


def test_imageset_contract():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.uint8).view(2, 3, 4, 4)
    s = ImageSet(x, torch.tensor([1, 2]), "t")
    assert len(s) == 2 and s.float01().max().item() == pytest.approx(95 / 255)
    assert s.to("cpu").x.data_ptr() == x.data_ptr()
    with pytest.raises(DataError, match=r"t: images are \(2, 4, 4\)"):
        ImageSet(x[:, 0], torch.tensor([1, 2]), "t")
    hwc = np.zeros((1, 32, 32, 3), np.uint8)
    hwc[0, 3, 4] = [7, 8, 9]
    assert ImageSet.from_hwc(hwc, np.array([5]), "h").x[0, :, 3, 4].tolist() == [7, 8, 9]
