"""`load_splits` on the real subset (tiny preset), the holdout rule, and the errors for missing files."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from nares.config import load_preset
from nares.data import data_root, holdout_indices, load_splits
from nares.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def tiny_data() -> dict:
    """The tiny preset's data section with the sizes the expectations below are written for."""
    return {**load_preset("tiny")["data"], "train_limit": 3000, "val_holdout": 256, "test_limit": 500}


@pytest.fixture(scope="module")
def subset_arrays(subset_npz: Path) -> dict[str, np.ndarray]:
    with np.load(subset_npz) as z:
        return {k: z[k] for k in ("x_train", "y_train", "x_test", "y_test")}


def test_data_root_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("NARES_DATA_DIR", str(tmp_path))
    assert data_root() == tmp_path
    monkeypatch.delenv("NARES_DATA_DIR")
    assert data_root() == Path.home() / ".cache" / "nares" / "data"


def test_holdout_rule_matches_its_definition():
    held = holdout_indices(50, 5, seed=3)
    digests = [int.from_bytes(hashlib.blake2b(f"3:{i}".encode(), digest_size=8).digest(), "big") for i in range(50)]
    assert held.tolist() == sorted(sorted(range(50), key=digests.__getitem__)[:5])
    assert holdout_indices(50, 5, seed=3).tolist() == held.tolist()
    assert holdout_indices(50, 5, seed=4).tolist() != held.tolist()
    # nested: holding out more images keeps the first ones
    assert set(held.tolist()) <= set(holdout_indices(50, 9, seed=3).tolist())
    with pytest.raises(ConfigError, match="data.val_holdout 50 must be between 1 and 49"):
        holdout_indices(50, 50, seed=0)


def test_tiny_preset_splits_on_the_real_subset(tiny_data, data_dir, subset_arrays):
    s = load_splits(tiny_data, data_dir, seed=0)
    assert (len(s.train), len(s.val), len(s.test)) == (3000, 256, 500)
    assert s.test.y[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    held = holdout_indices(5438, 256, seed=0)
    keep = np.setdiff1d(np.arange(5438), held)
    x_tr, y_tr = subset_arrays["x_train"], subset_arrays["y_train"]
    # val = the held-out images, train = the first 3000 of the rest, both exact pixels in CHW
    np.testing.assert_array_equal(s.val.x.numpy(), x_tr[held].transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(s.val.y.numpy(), y_tr[held])
    np.testing.assert_array_equal(s.train.x.numpy(), x_tr[keep[:3000]].transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(s.train.y.numpy(), y_tr[keep[:3000]])
    np.testing.assert_array_equal(s.test.x.numpy(), subset_arrays["x_test"][:500].transpose(0, 3, 1, 2))
    # disjoint (as images, not only indices) and deterministic; another seed holds out other images
    train_keys = {hashlib.sha1(im.tobytes()).digest() for im in s.train.x.numpy()}
    assert not any(hashlib.sha1(im.tobytes()).digest() in train_keys for im in s.val.x.numpy())
    again = load_splits(tiny_data, data_dir, seed=0)
    assert torch.equal(again.val.x, s.val.x) and torch.equal(again.train.x, s.train.x)
    other = load_splits(tiny_data, data_dir, seed=1)
    assert len(other.val) == 256 and not torch.equal(other.val.x, s.val.x)
    assert s.val.name == "cifar10-subset/holdout(seed=0)" and s.train.name == "cifar10-subset/train"
    train, val, test = s.to("cpu")
    assert torch.equal(val.y, s.val.y) and len(test) == 500 and len(train) == 3000


def test_missing_files_say_how_to_fetch(tiny_data, tmp_path, data_dir):
    full = load_preset("full")["data"]
    with pytest.raises(DataError, match=r"cifar10/cifar-10-python.tar.gz is missing.*`nares data fetch cifar10`"):
        load_splits(full, tmp_path)
    # train from the subset, val from CIFAR-10.1 whose image file is absent
    (tmp_path / "cifar10").mkdir()
    shutil.copy(data_dir / "cifar10" / "cifar10_prefix_subset.npz", tmp_path / "cifar10")
    (tmp_path / "cifar10.1").mkdir()
    shutil.copy(data_dir / "cifar10.1" / "cifar10.1_v6_labels.npy", tmp_path / "cifar10.1")
    cfg = {**tiny_data, "val": "cifar10.1"}
    with pytest.raises(DataError, match=r"cifar10.1_v6_data.npy is missing; `nares data fetch cifar10.1`"):
        load_splits(cfg, tmp_path)
    with pytest.raises(DataError, match=r"cifar10_prefix_subset.npz is missing"):
        load_splits(tiny_data, tmp_path / "elsewhere")


@pytest.mark.parametrize(("key", "value", "message"), [
    ("train", "imagenet", "data.train 'imagenet' is not one of cifar10, cifar10-subset"),
    ("val", "cifar10", "data.val 'cifar10' is not one of cifar10.1, holdout"),
    ("train_limit", 6000, r"data.train_limit 6000 must be null or an integer in 1..5182"),
    ("test_limit", 0, r"data.test_limit 0 must be null or an integer in 1..1017"),
    ("val_holdout", None, "data.val_holdout None must be an integer"),
])
def test_bad_data_settings_name_the_key(tiny_data, data_dir, key, value, message):
    with pytest.raises(ConfigError, match=message):
        load_splits({**tiny_data, key: value}, data_dir)
