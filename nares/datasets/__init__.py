"""Data sets as plug-ins: the registry by name (`register_dataset`, `get_dataset`, `dataset_names`) and
`dataset_for(cfg)` (the preset's `data.dataset`, default `cifar10`).

Owns the mapping name → `DataSet`; the interface is `nares.datasets.base`, CIFAR-10 `nares.datasets.cifar10`
(reading through `nares.data`). Must not import the store, the evaluator, Prefect, Ray or the app.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nares.datasets.base import DataSet
from nares.errors import ConfigError

DEFAULT_DATASET = "cifar10"
_DATASETS: dict[str, DataSet] = {}


def _builtins() -> None:
    if DEFAULT_DATASET not in _DATASETS:
        from nares.datasets.cifar10 import DATASET

        _DATASETS[DATASET.name] = DATASET


def register_dataset(ds: DataSet) -> DataSet:
    """Register `ds` under `ds.name` (re-registering a name replaces it)."""
    if not isinstance(ds, DataSet):
        raise TypeError(f"register_dataset expects a DataSet, got {type(ds).__name__}")
    _builtins()
    _DATASETS[ds.name] = ds
    return ds


def dataset_names() -> list[str]:
    from nares.plugins import load_plugins

    _builtins()
    load_plugins()
    return list(_DATASETS)


def get_dataset(name: str) -> DataSet:
    """The data set registered as `name`; an unknown name is one ConfigError line listing the known ones."""
    names = dataset_names()
    if name not in _DATASETS:
        raise ConfigError(f"unknown dataset {name!r} (known: {', '.join(names)})")
    return _DATASETS[name]


def dataset_for(cfg: Mapping[str, Any]) -> DataSet:
    """The data set a preset names (`data.dataset`; `cifar10` when absent)."""
    return get_dataset(str((cfg.get("data") or {}).get("dataset", DEFAULT_DATASET)))


__all__ = ["DEFAULT_DATASET", "DataSet", "dataset_for", "dataset_names", "get_dataset", "register_dataset"]
