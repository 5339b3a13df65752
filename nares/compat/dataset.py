"""The official NARes `dataset.py` names: `NASBenchR_CIFAR10_Dataset`, `Metric` and the record dataclasses.

Backed by `nares.api.open_dataset` (the published `cifar10.jsonl`, an export, or a release folder),
with the official class's observable behaviour (PROTOCOL §9): `query` returns a `Record` dataclass,
`batch_query` is a generator, `Metric` values are the official lower-case strings, scalar metrics come
back as numpy floats (`np.mean` of one run; BEST_EPOCH a float), MACs/Params as stored in the file
(integers when the file holds integer counts, millions otherwise), VAL_LOSS and VAL_TEST_ACC are
declared but raise in `get_metric`, and `get_objective` refuses exactly `test_metrics` (TEST_FGSM_STABLE
is allowed there). Differences, documented: a missing value is None (the official class would fail on
it), an architecture that is not in the data raises KeyError naming it, `corruption` is None unless a
record holds the full 19 × 5 grid, and a query reads one record from Parquet rather than holding all
15,625 in memory (`.dataset` is a lazy mapping).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, fields
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from nares.compat.search_space import Arch, WRNSearchSpace


class Metric(Enum):
    """Scalar metrics with the official string values (`Metric("val_pgd_acc")`, `Metric["VAL_PGD_ACC"]`)."""

    MACS = "macs"
    PARAMS = "params"
    BEST_EPOCH = "best_epoch"
    TRAIN_ACC = "train_acc"
    TRAIN_LOSS = "train_loss"
    VAL_LOSS = "val_loss"
    VAL_CLEAN_ACC = "val_clean_acc"
    VAL_TEST_ACC = "val_test_acc"
    VAL_PGD_ACC = "val_pgd_acc"
    VAL_CW_ACC = "val_cw_acc"
    TEST_CLEAN_ACC = "test_clean_acc"
    TEST_LOSS = "test_loss"
    TEST_FGSM_ACC = "test_fgsm_acc"
    TEST_FGSM_STABLE = "test_fgsm_stable"
    TEST_PGD_ACC = "test_pgd_acc"
    TEST_PGD_STABLE = "test_pgd_stable"
    TEST_PGD_LIP = "test_pgd_lip"
    TEST_CW_ACC = "test_cw_acc"
    TEST_CW_STABLE = "test_cw_stable"
    TEST_CW_LIP = "test_cw_lip"
    TEST_AA_ACC = "test_aa_acc"
    TEST_CORRUPT_ACC = "test_corrupt_acc"


# Declared in the official `Metric` but without a branch in its `get_metric`.
UNSUPPORTED = frozenset({Metric.VAL_LOSS, Metric.VAL_TEST_ACC})


@dataclass
class TrainHistory:
    train_loss: list[float]
    train_acc: list[float]
    val_loss: list[float]
    val_clean_acc: list[float]
    val_pgd_acc: list[float]
    val_pgd_stable: list[float]
    val_pgd_lip: list[float]
    val_pgd_loss: list[float]
    val_cw_acc: list[float]
    val_cw_stable: list[float]
    val_cw_lip: list[float]
    val_cw_loss: list[float]


@dataclass
class CorruptionEntry:
    acc: list[float]  # severities 1 to 5
    loss: list[float]


@dataclass
class CorruptionData:
    gaussian_noise: CorruptionEntry
    shot_noise: CorruptionEntry
    impulse_noise: CorruptionEntry
    speckle_noise: CorruptionEntry
    defocus_blur: CorruptionEntry
    glass_blur: CorruptionEntry
    gaussian_blur: CorruptionEntry
    motion_blur: CorruptionEntry
    zoom_blur: CorruptionEntry
    snow: CorruptionEntry
    frost: CorruptionEntry
    fog: CorruptionEntry
    brightness: CorruptionEntry
    spatter: CorruptionEntry
    contrast: CorruptionEntry
    elastic_transform: CorruptionEntry
    pixelate: CorruptionEntry
    jpeg_compression: CorruptionEntry
    saturate: CorruptionEntry
    total_avg: CorruptionEntry


@dataclass
class AttackData:
    Linf_fgsm_acc: float | None
    Linf_fgsm_stable: float | None
    Linf_pgd_acc: float | None
    Linf_pgd_stable: float | None
    Linf_pgd_lip: float | None
    Linf_cw_acc: float | None
    Linf_cw_stable: float | None
    Linf_cw_lip: float | None
    Linf_aa_acc: float | None


@dataclass
class TrainRecord:
    seed: int
    gpu_type: str
    timestamp: datetime.date
    training_time: float  # GPU-days
    history: TrainHistory
    best_epoch: int
    test_clean_acc: float | None
    test_loss: float | None
    attack: list[AttackData]
    corruption: CorruptionData | None


@dataclass
class Record:
    arch_id: int
    arch: Arch
    macs: float | int
    params: float | int
    train_records: list[TrainRecord]


_HISTORY = {"train_loss": "train_loss", "train_acc": "train_acc", "val_loss": "val_loss", "val_clean_acc": "val_acc",
            "val_pgd_acc": "pgd", "val_pgd_stable": "pgd_stable", "val_pgd_lip": "pgd_lip", "val_pgd_loss": "pgd_loss",
            "val_cw_acc": "cw", "val_cw_stable": "cw_stable", "val_cw_lip": "cw_lip", "val_cw_loss": "cw_loss"}
_CORRUPTIONS = tuple(f.name for f in fields(CorruptionData) if f.name != "total_avg")
_LEVELS = ("1", "2", "3", "4", "5")
# Metric → (where it is read in a Record); history entries are read at best_epoch
_AT_BEST = {Metric.TRAIN_ACC: "train_acc", Metric.TRAIN_LOSS: "train_loss", Metric.VAL_CLEAN_ACC: "val_clean_acc",
            Metric.VAL_PGD_ACC: "val_pgd_acc", Metric.VAL_CW_ACC: "val_cw_acc"}
_ATTACK = {Metric.TEST_FGSM_ACC: "Linf_fgsm_acc", Metric.TEST_FGSM_STABLE: "Linf_fgsm_stable",
           Metric.TEST_PGD_ACC: "Linf_pgd_acc", Metric.TEST_PGD_STABLE: "Linf_pgd_stable",
           Metric.TEST_PGD_LIP: "Linf_pgd_lip", Metric.TEST_CW_ACC: "Linf_cw_acc",
           Metric.TEST_CW_STABLE: "Linf_cw_stable", Metric.TEST_CW_LIP: "Linf_cw_lip", Metric.TEST_AA_ACC: "Linf_aa_acc"}


def _mean(values: list) -> Any:
    """`np.mean` as the official class takes it over the runs of a record; None when a value is missing."""
    return None if any(v is None for v in values) else np.mean(values)


def _corruption(corr: Mapping) -> CorruptionData | None:
    if set(corr) != set(_CORRUPTIONS) or any(set(c) != set(_LEVELS) for c in corr.values()):
        return None
    entries = {k: CorruptionEntry(acc=[v[s]["acc"] for s in _LEVELS], loss=[v[s]["loss"] for s in _LEVELS])
               for k, v in corr.items()}
    total = CorruptionEntry(acc=np.array([e.acc for e in entries.values()]).mean(axis=0).tolist(),
                            loss=np.array([e.loss for e in entries.values()]).mean(axis=0).tolist())
    return CorruptionData(**entries, total_avg=total)


def record_from_published(rec: Mapping, counts_as_integers: bool = False) -> Record:
    """The official `Record` of a published-layout record (`nares.api.Dataset.query`)."""
    train = []
    for tr, tb in zip(rec["train"], rec["test_best"], strict=True):
        train.append(TrainRecord(
            seed=tr["seed"], gpu_type=tr["gpu_type"],
            timestamp=datetime.date(*(int(x) for x in tr["timestamp"].split("-"))),
            training_time=tr["training_time"], best_epoch=tr["best_epoch"],
            history=TrainHistory(**{k: tr[v] for k, v in _HISTORY.items()}),
            test_clean_acc=tb.get("test_clean_acc"), test_loss=tb.get("test_loss"),
            attack=[AttackData(**{k: tb.get(k) for k in _ATTACK.values()})],
            corruption=_corruption(tb.get("corruptions") or {}),
        ))
    macs, params = rec["MACs"], rec["Params"]
    if counts_as_integers:
        macs, params = round(macs * 1_000_000), round(params * 1_000_000)
    return Record(arch_id=rec["arch_id"], arch=Arch(*(rec["arch"][k] for k in ("D1", "W1", "D2", "W2", "D3", "W3"))),
                  macs=macs, params=params, train_records=train)


class _Records(Mapping):
    """`dataset.dataset`: Arch → Record, read on access (keys in arch_id order)."""

    def __init__(self, owner: NASBenchR_CIFAR10_Dataset):
        self._owner = owner

    def __getitem__(self, arch: Any) -> Record:
        return self._owner.query(arch)

    def __iter__(self) -> Iterator[Arch]:
        return iter([Arch(*a.to_tuple()) for a in self._owner.core.archs()])

    def __len__(self) -> int:
        return len(self._owner.core)

    def __contains__(self, arch: object) -> bool:
        return arch in self._owner.core


class NASBenchR_CIFAR10_Dataset:
    """The official dataset class over a `nares.api.Dataset`: a jsonl path, a release folder, or `core=`."""

    def __init__(self, data_path: str | Path = "./data/cifar10.jsonl", *, core: Any = None, strict: bool = False):
        if core is None:
            from nares.api import open_dataset

            core = open_dataset(data_path, strict=strict)
        self.core = core
        self.search_space = WRNSearchSpace()
        self.test_metrics = [
            Metric.TEST_CLEAN_ACC, Metric.TEST_LOSS, Metric.TEST_FGSM_ACC, Metric.TEST_PGD_ACC,
            Metric.TEST_PGD_STABLE, Metric.TEST_PGD_LIP, Metric.TEST_CW_ACC, Metric.TEST_CW_STABLE,
            Metric.TEST_CW_LIP, Metric.TEST_AA_ACC, Metric.TEST_CORRUPT_ACC,
        ]
        self.dataset = _Records(self)
        self._integer_counts = getattr(core, "report", None) is not None and core.report.counts_unit == "count"

    @classmethod
    def from_release(cls, version: str) -> NASBenchR_CIFAR10_Dataset:
        """A published release of this project, by version (`nares.api.open_dataset(release=…)`)."""
        from nares.api import open_dataset

        return cls(core=open_dataset(release=version))

    @property
    def name(self) -> str:
        return "NASBenchR_CIFAR10"

    def _id(self, arch: Any) -> int:
        from nares.errors import ArchError

        try:
            return self.core.id_of(arch)
        except ArchError as e:
            raise KeyError(f"{arch} is not in this dataset ({e})") from None

    def query(self, arch: Any) -> Record:
        return record_from_published(self.core.query(self._id(arch)), self._integer_counts)

    def batch_query(self, archs: Iterable[Any]) -> Iterator[Record]:
        """A generator, as the official one: records are read as they are asked for."""
        for arch in archs:
            yield self.query(arch)

    def get_metric(self, record: Record, metric: Metric | str) -> Any:
        """A scalar metric of a `Record`, as the official class computes it."""
        if isinstance(metric, str):
            metric = Metric(metric)
        runs = record.train_records
        if metric is Metric.MACS:
            return record.macs
        if metric is Metric.PARAMS:
            return record.params
        if metric is Metric.BEST_EPOCH:
            return _mean([r.best_epoch for r in runs])
        if metric in _AT_BEST:
            return _mean([_at(getattr(r.history, _AT_BEST[metric]), r.best_epoch) for r in runs])
        if metric is Metric.TEST_CLEAN_ACC:
            return _mean([r.test_clean_acc for r in runs])
        if metric is Metric.TEST_LOSS:
            return _mean([r.test_loss for r in runs])
        if metric in _ATTACK:
            return _mean([getattr(a, _ATTACK[metric]) for r in runs for a in r.attack])
        if metric is Metric.TEST_CORRUPT_ACC:
            return _mean([None if r.corruption is None else np.mean(r.corruption.total_avg.acc) for r in runs])
        raise ValueError(f"Invalid metric: {metric}")

    def get_objective(self, arch: Any, metric: Metric | str) -> Any:
        """`get_metric(query(arch), metric)`, refusing `test_metrics`; read from the summary columns."""
        if isinstance(metric, str):
            metric = Metric(metric)
        row = self._id(arch)
        if metric in self.test_metrics:
            raise ValueError(f"Metric {metric} is only available at test stage")
        if metric in UNSUPPORTED:
            raise ValueError(f"Invalid metric: {metric}")
        if metric in (Metric.MACS, Metric.PARAMS):
            return self.get_metric(self.query(arch), metric)
        v = self.core.metric(row, metric.name)
        return None if v is None else np.float64(v)


def _at(values: list, epoch: int) -> Any:
    return values[epoch] if 0 <= epoch < len(values) else None
