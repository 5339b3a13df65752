"""Non-dominated sorting on two objectives, and the best/worst sets of PROTOCOL §8."""

from __future__ import annotations

import numpy as np


def _front_mask(up: np.ndarray, down: np.ndarray) -> np.ndarray:
    """Points no other point dominates (dominates: ≥ on `up`, ≤ on `down`, strictly better on one)."""
    order = np.lexsort((-up, down))  # by `down` ascending, then `up` descending
    u, d = up[order], down[order]
    new_group = np.r_[True, d[1:] != d[:-1]]
    group_start = np.maximum.accumulate(np.where(new_group, np.arange(len(d)), 0))
    # best `up` among points with strictly smaller `down`: running max up to the previous group
    run_max = np.maximum.accumulate(u)
    prev = np.where(group_start > 0, run_max[np.maximum(group_start - 1, 0)], -np.inf)
    group_best = u[group_start]  # sorted by `up` descending within a group
    dominated = (prev >= u) | (group_best > u)
    mask = np.empty(len(up), dtype=bool)
    mask[order] = ~dominated
    return mask


def pareto_ranks(maximize: np.ndarray, minimize: np.ndarray) -> np.ndarray:
    """Rank of every point under non-dominated sorting of (maximize ↑, minimize ↓); rank 0 = Pareto front.

    Points equal on both objectives share a rank. NaN objectives are not allowed.
    """
    up, down = np.asarray(maximize, dtype=np.float64), np.asarray(minimize, dtype=np.float64)
    if up.shape != down.shape or np.isnan(up).any() or np.isnan(down).any():
        raise ValueError("pareto_ranks needs two NaN-free arrays of the same shape")
    ranks = np.full(len(up), -1, dtype=np.int64)
    left = np.arange(len(up))
    rank = 0
    while len(left):
        front = _front_mask(up[left], down[left])
        ranks[left[front]] = rank
        left = left[~front]
        rank += 1
    return ranks


def best_and_worst(maximize: np.ndarray, minimize: np.ndarray, max_rank: int = 16, *,
                   ranks: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the best set (Pareto rank < `max_rank`) and of the worst set: the same number of points
    taken by inverse rank (non-dominated sorting with both objectives reversed), ties broken by lower
    `maximize`, then index. `ranks`: `pareto_ranks(maximize, minimize)` when already computed."""
    if ranks is None:
        ranks = pareto_ranks(maximize, minimize)
    best = np.flatnonzero(ranks < max_rank)
    inverse = pareto_ranks(-np.asarray(maximize, dtype=np.float64), -np.asarray(minimize, dtype=np.float64))
    order = np.lexsort((np.arange(len(inverse)), maximize, inverse))
    return best, np.sort(order[: len(best)])
