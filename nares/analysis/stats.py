"""Correlation coefficients (Pearson, Spearman, Kendall τ-b) in numpy, NaN pairs dropped."""

from __future__ import annotations

import numpy as np


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


def kendall_tau(x, y, chunk: int = 512) -> float:
    """Kendall τ-b (ties in either variable accounted for); O(n²) in chunks of rows."""
    x, y = _pairs(x, y)
    n = len(x)
    concordant = tie_x = tie_y = 0.0
    for s in range(0, n, chunk):
        dx = np.sign(x[s:s + chunk, None] - x[None, :])
        dy = np.sign(y[s:s + chunk, None] - y[None, :])
        concordant += float((dx * dy).sum())
        tie_x += float((dx == 0).sum())
        tie_y += float((dy == 0).sum())
    pairs = n * n
    denom = np.sqrt((pairs - tie_x) * (pairs - tie_y))  # ordered pairs; the diagonal counts as a tie in both
    return float(concordant / denom) if denom > 0 else float("nan")
