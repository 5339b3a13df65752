"""Confusion and confidence statistics of one evaluation cell (PROTOCOL §7.2, Jung et al.): accuracy, the
C×C confusion matrix, mean softmax confidence by true and by predicted class (C×C each) and of correct vs
incorrect predictions, from logits (N×C) and true labels (N).

Conventions: the prediction is the argmax of the logits (first index on ties); the confusion matrix has
rows = true class, columns = predicted class; row i of a confidence matrix is the mean softmax vector over
the points of (true or predicted) class i, NaN throughout when there are none; "confidence" of a point is
its max softmax probability, and a mean over no point is NaN. `ConfusionStats` accumulates float64 sums
and counts per batch and divides once at the end, so any split of the data into batches gives the same
result (to float64 rounding). In a ledger cell (`ConfusionResult.cell`) NaN is written as null.

Depends only on torch and `nares.errors`; must not import the store, Prefect, Ray or the app.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from nares.errors import NaresError


class ConfusionError(NaresError, ValueError):
    """Bad inputs to the confusion statistics (shapes, dtypes, labels outside [0, C))."""


def _classes(c: int) -> int:
    if isinstance(c, bool) or not isinstance(c, int) or c < 1:
        raise ConfusionError(f"number of classes {c!r} is not a positive integer")
    return c


def _labels(name: str, t: Any, c: int, n: int | None = None) -> torch.Tensor:
    if not isinstance(t, torch.Tensor) or t.ndim != 1 or t.is_floating_point() or t.is_complex() \
            or t.dtype == torch.bool:
        shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
        raise ConfusionError(f"{name} {shape} is not a 1-D tensor of integer class indices")
    if n is not None and t.shape[0] != n:
        raise ConfusionError(f"{name} has {t.shape[0]} entries, expected {n}")
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= c):
        raise ConfusionError(f"{name} span [{int(t.min())}, {int(t.max())}], outside [0, {c})")
    return t.long()


def _probs(probs: Any, c: int | None = None) -> torch.Tensor:
    if not isinstance(probs, torch.Tensor) or probs.ndim != 2 or not probs.is_floating_point() \
            or (c is not None and probs.shape[1] != c):
        shape = tuple(probs.shape) if isinstance(probs, torch.Tensor) else type(probs).__name__
        raise ConfusionError(f"probabilities {shape} are not a floating-point (N, {c or 'C'}) matrix")
    return probs.double()


def confusion_matrix(pred: torch.Tensor, y: torch.Tensor, c: int) -> torch.Tensor:
    """C×C int64 counts: entry [i, j] = number of points of true class i predicted as j."""
    c = _classes(c)
    y = _labels("labels", y, c)
    pred = _labels("predictions", pred, c, y.shape[0])
    return torch.bincount(y * c + pred, minlength=c * c).reshape(c, c)


def _mean_rows(probs: torch.Tensor, index: torch.Tensor, c: int) -> torch.Tensor:
    sums = torch.zeros(c, c, dtype=torch.float64, device=probs.device).index_add_(0, index, probs)
    counts = torch.bincount(index, minlength=c).double()
    return sums / counts.unsqueeze(1)  # 0/0 = NaN for absent classes


def confidence_by_true_class(probs: torch.Tensor, y: torch.Tensor, c: int) -> torch.Tensor:
    """C×C float64: row i = mean softmax vector over the points of true class i (NaN row when none)."""
    c = _classes(c)
    probs = _probs(probs, c)
    return _mean_rows(probs, _labels("labels", y, c, probs.shape[0]), c)


def confidence_by_predicted_class(probs: torch.Tensor, pred: torch.Tensor, c: int) -> torch.Tensor:
    """C×C float64: row i = mean softmax vector over the points predicted as class i (NaN row when none)."""
    c = _classes(c)
    probs = _probs(probs, c)
    return _mean_rows(probs, _labels("predictions", pred, c, probs.shape[0]), c)


def confidence_correct_incorrect(probs: torch.Tensor, pred: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(mean max softmax of the correct predictions, of the incorrect ones); NaN for an empty group."""
    probs = _probs(probs)
    c = probs.shape[1]
    y = _labels("labels", y, c, probs.shape[0])
    ok = _labels("predictions", pred, c, probs.shape[0]) == y
    top = probs.max(dim=1).values if probs.shape[0] else probs.new_zeros(0)
    return _mean(float(top[ok].sum()), int(ok.sum())), _mean(float(top[~ok].sum()), int((~ok).sum()))


def _mean(total: float, n: int) -> float:
    return total / n if n else math.nan


@dataclass(frozen=True)
class ConfusionResult:
    """All statistics of one cell (float64 / int64 tensors on the CPU)."""

    n: int
    accuracy: float
    cm: torch.Tensor  # C×C counts, rows = true, columns = predicted
    confidence_true: torch.Tensor  # C×C, row = true class
    confidence_pred: torch.Tensor  # C×C, row = predicted class
    confidence_correct: float
    confidence_incorrect: float

    def cell(self) -> dict[str, Any]:
        """A JSON-ready ledger cell: nested lists, NaN written as None."""
        def clean(v: float) -> float | None:
            return None if math.isnan(v) else v

        def matrix(m: torch.Tensor) -> list[list[float | None]]:
            return [[clean(float(v)) for v in row] for row in m.tolist()]

        return {"n": self.n, "acc": self.accuracy, "cm": self.cm.tolist(),
                "conf_true": matrix(self.confidence_true), "conf_pred": matrix(self.confidence_pred),
                "conf_correct": clean(self.confidence_correct), "conf_incorrect": clean(self.confidence_incorrect)}


def confusion_rows(cell: dict[str, Any]) -> list[tuple[str, str, float]]:
    """(metric, key, value) rows of a `ConfusionResult.cell()`: "acc", "conf_correct", "conf_incorrect" at key
    ""; "cm", "conf_true", "conf_pred" at key "<row>/<column>" (true/predicted class); None read back as NaN."""
    def num(v: Any) -> float:
        return math.nan if v is None else float(v)

    rows = [(m, "", num(cell[m])) for m in ("acc", "conf_correct", "conf_incorrect")]
    for m in ("cm", "conf_true", "conf_pred"):
        rows += [(m, f"{i}/{j}", num(v)) for i, r in enumerate(cell[m]) for j, v in enumerate(r)]
    return rows


class ConfusionStats:
    """Accumulates (logits, y) batches of one cell; `result()` gives every statistic, exact under any split."""

    def __init__(self, num_classes: int) -> None:
        self.c = _classes(num_classes)
        self._cm: torch.Tensor | None = None
        self._sum_true: torch.Tensor | None = None
        self._sum_pred: torch.Tensor | None = None
        self._parts: list[list[float]] = [[], []]  # per-batch Σ max softmax of the correct, of the incorrect

    def update(self, logits: torch.Tensor, y: torch.Tensor) -> None:
        """Adds one batch: `logits` N×C (any float dtype; softmax in float64), `y` N true labels."""
        if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[1] != self.c \
                or not logits.is_floating_point():
            shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
            raise ConfusionError(f"logits {shape} are not a floating-point (N, {self.c}) matrix")
        logits = logits.detach()
        y = _labels("labels", y.to(logits.device) if isinstance(y, torch.Tensor) else y, self.c, logits.shape[0])
        probs = torch.softmax(logits.double(), dim=1)
        pred = logits.argmax(dim=1)
        if self._cm is None:
            self._cm = torch.zeros(self.c * self.c, dtype=torch.long, device=logits.device)
            self._sum_true = torch.zeros(self.c, self.c, dtype=torch.float64, device=logits.device)
            self._sum_pred = torch.zeros(self.c, self.c, dtype=torch.float64, device=logits.device)
        assert self._sum_true is not None and self._sum_pred is not None
        self._cm += torch.bincount(y * self.c + pred, minlength=self.c * self.c)
        self._sum_true.index_add_(0, y, probs)
        self._sum_pred.index_add_(0, pred, probs)
        ok = pred == y
        top = probs.max(dim=1).values
        self._parts[0].append(float(top[ok].sum()))
        self._parts[1].append(float(top[~ok].sum()))

    @property
    def n(self) -> int:
        return 0 if self._cm is None else int(self._cm.sum())

    def result(self) -> ConfusionResult:
        """Every statistic of the batches added so far (at least one point needed)."""
        if self._cm is None or self.n == 0:
            raise ConfusionError("no points were added to the confusion statistics")
        assert self._sum_true is not None and self._sum_pred is not None
        cm = self._cm.reshape(self.c, self.c).cpu()
        n_true, n_pred = cm.sum(1).double(), cm.sum(0).double()
        correct = int(cm.diagonal().sum())
        return ConfusionResult(
            n=self.n,
            accuracy=correct / self.n,
            cm=cm,
            confidence_true=self._sum_true.cpu() / n_true.unsqueeze(1),
            confidence_pred=self._sum_pred.cpu() / n_pred.unsqueeze(1),
            confidence_correct=_mean(math.fsum(self._parts[0]), correct),
            confidence_incorrect=_mean(math.fsum(self._parts[1]), self.n - correct),
        )
