"""The data-set registry and CIFAR-10 (nares.datasets)."""

from __future__ import annotations

import pytest
import torch

from nares.config import load_preset
from nares.constants import CORRUPTIONS
from nares.data import load_splits
from nares.datasets import DataSet, dataset_for, dataset_names, get_dataset, register_dataset
from nares.errors import ConfigError


def test_cifar10_is_the_default():
    ds = dataset_for(load_preset("tiny"))
    assert ds is get_dataset("cifar10")
    assert (ds.name, ds.num_classes, ds.image_shape, ds.splits) == ("cifar10", 10, (3, 32, 32), ("train", "val", "test"))
    assert ds.corruptions == CORRUPTIONS and len(ds.corruptions) == 19
    with pytest.raises(ConfigError, match=r"^unknown dataset 'svhn' \(known: cifar10"):
        get_dataset("svhn")
    with pytest.raises(ConfigError, match="unknown dataset 'svhn'"):
        dataset_for({"data": {"dataset": "svhn"}})


def test_cifar10_loads_the_readers_splits(data_dir):
    """The same images and labels as nares.data.load_splits on the real data files."""
    cfg = load_preset("tiny")
    ref = load_splits(cfg["data"], data_dir, seed=cfg["train"]["seed"])
    got = get_dataset("cifar10").load(cfg["data"], data_dir, seed=cfg["train"]["seed"])
    for split in ("train", "val", "test"):
        a, b = getattr(ref, split), getattr(got, split)
        assert a.x.shape[1:] == (3, 32, 32) and len(a.y) > 0
        assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)


def test_register_a_dataset():
    class Toy(DataSet):
        name, num_classes, image_shape = "toy-ds", 3, (1, 4, 4)

        def load(self, data_cfg, root=None, *, seed=0):
            return None

    register_dataset(Toy())
    assert "toy-ds" in dataset_names() and get_dataset("toy-ds").num_classes == 3
    with pytest.raises(TypeError):
        register_dataset(object())
