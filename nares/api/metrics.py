"""The `Metric` names of PROTOCOL §5, their exact definitions, and `get_metric` on published records.

Units follow the published release (`cifar10.jsonl`): accuracies and stable accuracies are
PERCENTAGES (0–100), losses and Lipschitz estimates are raw, `MACS`/`PARAMS` are in MILLIONS,
`BEST_EPOCH` is a 0-based epoch index. Every value the query API returns uses these units.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any

import numpy as np

from nares.errors import NaresError


class MetricError(NaresError, ValueError):
    """An unknown metric name, or a metric asked for where it is not allowed."""


class Metric(Enum):
    """A dataset metric: `value` is its name; `column`, `unit`, `split` and `definition` say what it is.

    VAL_* metrics and TRAIN_ACC/TRAIN_LOSS are read at the best epoch (highest validation CW-40
    accuracy, ties → earlier epoch). VAL_* use the validation set (CIFAR-10.1 in the full protocol);
    TRAIN_* are the adversarial (PGD-7) training loss/accuracy of that epoch; TEST_* are measured on
    the CIFAR-10 test set with the best checkpoint. TEST_CORRUPT_ACC is the mean accuracy over the
    95 CIFAR-10-C cells (19 corruptions × 5 severities), summed in the official class's order (mean
    over severities of the mean over corruptions: bit-identical values); it is missing (None/NaN)
    where CIFAR-10-C was not evaluated.
    """

    MACS = "MACS"
    PARAMS = "PARAMS"
    BEST_EPOCH = "BEST_EPOCH"
    TRAIN_ACC = "TRAIN_ACC"
    TRAIN_LOSS = "TRAIN_LOSS"
    VAL_LOSS = "VAL_LOSS"
    VAL_CLEAN_ACC = "VAL_CLEAN_ACC"
    VAL_PGD_ACC = "VAL_PGD_ACC"
    VAL_CW_ACC = "VAL_CW_ACC"
    TEST_CLEAN_ACC = "TEST_CLEAN_ACC"
    TEST_LOSS = "TEST_LOSS"
    TEST_FGSM_ACC = "TEST_FGSM_ACC"
    TEST_FGSM_STABLE = "TEST_FGSM_STABLE"
    TEST_PGD_ACC = "TEST_PGD_ACC"
    TEST_PGD_STABLE = "TEST_PGD_STABLE"
    TEST_PGD_LIP = "TEST_PGD_LIP"
    TEST_CW_ACC = "TEST_CW_ACC"
    TEST_CW_STABLE = "TEST_CW_STABLE"
    TEST_CW_LIP = "TEST_CW_LIP"
    TEST_AA_ACC = "TEST_AA_ACC"
    TEST_CORRUPT_ACC = "TEST_CORRUPT_ACC"

    @classmethod
    def parse(cls, value: Metric | str) -> Metric:
        """A Metric from itself or its name (case-insensitive)."""
        if isinstance(value, Metric):
            return value
        try:
            return cls[str(value).strip().upper()]
        except KeyError:
            raise MetricError(f"unknown metric {value!r} (metrics: {', '.join(m.value for m in cls)})") from None

    @property
    def is_test(self) -> bool:
        return self.value.startswith("TEST_")

    @property
    def column(self) -> str:
        """The column of the per-architecture summary table (internal units: fractions, exact counts)."""
        return self.value.lower()

    @property
    def unit(self) -> str:
        """'percent', 'millions', 'epoch' or 'raw' (losses, Lipschitz estimates)."""
        return _SPEC[self][0]

    @property
    def split(self) -> str:
        return "test" if self.is_test else ("complexity" if self in (Metric.MACS, Metric.PARAMS) else "train/validation")

    @property
    def definition(self) -> str:
        return _SPEC[self][2]

    @property
    def higher_is_better(self) -> bool:
        """True for accuracies; False for losses, Lipschitz estimates and costs."""
        return self.unit == "percent"


# metric → (unit, path in the published record, definition)
_SPEC: dict[Metric, tuple[str, tuple[str, ...], str]] = {
    Metric.MACS: ("millions", ("MACs",), "multiply-accumulates for one 32×32 image (torchprofile convention), millions"),
    Metric.PARAMS: ("millions", ("Params",), "parameters, BN γ/β included, millions"),
    Metric.BEST_EPOCH: ("epoch", ("train", "best_epoch"), "0-based epoch of the highest validation CW-40 accuracy"),
    Metric.TRAIN_ACC: ("percent", ("history", "train_acc"), "adversarial (PGD-7) training accuracy at the best epoch"),
    Metric.TRAIN_LOSS: ("raw", ("history", "train_loss"), "adversarial (PGD-7) training loss at the best epoch"),
    Metric.VAL_LOSS: ("raw", ("history", "val_loss"), "validation clean cross-entropy at the best epoch"),
    Metric.VAL_CLEAN_ACC: ("percent", ("history", "val_acc"), "validation clean accuracy at the best epoch"),
    Metric.VAL_PGD_ACC: ("percent", ("history", "pgd"), "validation PGD-20 accuracy (ε=8/255) at the best epoch"),
    Metric.VAL_CW_ACC: ("percent", ("history", "cw"), "validation CW-40 accuracy (ε=8/255) at the best epoch"),
    Metric.TEST_CLEAN_ACC: ("percent", ("test", "test_clean_acc"), "test clean accuracy, best checkpoint"),
    Metric.TEST_LOSS: ("raw", ("test", "test_loss"), "test clean cross-entropy, best checkpoint"),
    Metric.TEST_FGSM_ACC: ("percent", ("test", "Linf_fgsm_acc"), "test FGSM accuracy (one step of ε=8/255)"),
    Metric.TEST_FGSM_STABLE: ("percent", ("test", "Linf_fgsm_stable"), "test FGSM stable accuracy (prediction unchanged)"),
    Metric.TEST_PGD_ACC: ("percent", ("test", "Linf_pgd_acc"), "test PGD-20 accuracy (ε=8/255, step 0.8/255)"),
    Metric.TEST_PGD_STABLE: ("percent", ("test", "Linf_pgd_stable"), "test PGD-20 stable accuracy"),
    Metric.TEST_PGD_LIP: ("raw", ("test", "Linf_pgd_lip"), "empirical Lipschitz estimate of the logits under PGD-20"),
    Metric.TEST_CW_ACC: ("percent", ("test", "Linf_cw_acc"), "test CW-40 accuracy (margin loss, ε=8/255)"),
    Metric.TEST_CW_STABLE: ("percent", ("test", "Linf_cw_stable"), "test CW-40 stable accuracy"),
    Metric.TEST_CW_LIP: ("raw", ("test", "Linf_cw_lip"), "empirical Lipschitz estimate of the logits under CW-40"),
    Metric.TEST_AA_ACC: ("percent", ("test", "Linf_aa_acc"), "test AutoAttack-Compact (APGD-CE + APGD-T) accuracy"),
    Metric.TEST_CORRUPT_ACC: ("percent", ("corruptions",), "mean test accuracy over the 95 CIFAR-10-C cells"),
}


def get_metric(record: Mapping[str, Any], metric: Metric | str) -> float | int | None:
    """The value of `metric` in a published-layout record, in the record's own units (percent, millions).

    VAL_*/TRAIN_* read the per-epoch lists at `best_epoch`; TEST_CORRUPT_ACC is the official class's
    mean over severities of the mean over corruptions (`nares.api.summary.corrupt_acc_pct`; the mean
    of the cells present when the 19 × 5 grid is incomplete; None when `corruptions` is empty).
    """
    m = Metric.parse(metric)
    path = _SPEC[m][1]
    try:
        train, test = record["train"][0], record["test_best"][0]
        if path[0] in ("MACs", "Params"):
            return record[path[0]]
        if path[0] == "train":
            return train[path[1]]
        if path[0] == "history":
            return train[path[1]][train["best_epoch"]]
        if path[0] == "test":
            return test[path[1]]
        corr = test.get("corruptions") or {}
        cells = [cell["acc"] for sev in corr.values() for cell in sev.values()]
    except (KeyError, IndexError, TypeError) as e:
        raise MetricError(f"record {record.get('arch_id', '?')} has no value for {m.value} ({e!r})") from None
    if not cells:
        return None
    from nares.api.summary import corrupt_acc_pct

    names = [i for i, sev in enumerate(corr.values()) for _ in sev]
    sevs = [int(s) for sev in corr.values() for s in sev]
    return float(corrupt_acc_pct(np.array([len(cells)]), np.array(names), np.array(sevs), np.array(cells, float))[0])
