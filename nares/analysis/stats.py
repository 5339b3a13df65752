"""Correlation coefficients (Pearson, Spearman in numpy; Kendall τ-b by scipy), NaN pairs dropped."""

from __future__ import annotations

import numpy as np
from scipy.stats import kendalltau


def _pairs(x, y) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    ok = ~(np.isnan(x) | np.isnan(y))
    return x[ok], y[ok]


def pearson(x, y) -> float:
    x, y = _pairs(x, y)
    if len(x) < 2 or x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def _average_ranks(v: np.ndarray) -> np.ndarray:
    order = np.argsort(v, kind="stable")
    sv = v[order]
    starts = np.r_[0, np.flatnonzero(sv[1:] != sv[:-1]) + 1]
    ends = np.r_[starts[1:], len(v)]
    avg = np.repeat((starts + ends - 1) / 2.0, ends - starts)
    ranks = np.empty(len(v))
    ranks[order] = avg
    return ranks


def spearman(x, y) -> float:
    x, y = _pairs(x, y)
    return pearson(_average_ranks(x), _average_ranks(y))


def kendall_tau(x, y) -> float:
    """Kendall τ-b (ties in either variable accounted for); NaN for fewer than 2 pairs or a constant input."""
    x, y = _pairs(x, y)
    if len(x) < 2 or (x == x[0]).all() or (y == y[0]).all():
        return float("nan")
    return float(kendalltau(x, y).statistic)
