"""Analyses with known answers: Pareto ranks, best/worst sets, PCA direction, design ratios, correlations."""

from __future__ import annotations

import numpy as np
import pytest

from nares.analysis import (
    best_and_worst,
    depth_share,
    kendall_tau,
    pareto_ranks,
    pca,
    pearson,
    spearman,
    width_per_depth,
)
from nares.spaces.wrn import Arch


def _brute_ranks(up: np.ndarray, down: np.ndarray) -> np.ndarray:
    n = len(up)
    dom = np.array([[up[j] >= up[i] and down[j] <= down[i] and (up[j] > up[i] or down[j] < down[i]) for j in range(n)]
                    for i in range(n)])
    ranks, left, r = np.full(n, -1), set(range(n)), 0
    while left:
        front = {i for i in left if not any(dom[i, j] for j in left)}
        for i in front:
            ranks[i] = r
        left -= front
        r += 1
    return ranks


def test_pareto_ranks_hand_example():
    #            acc ↑  macs ↓
    pts = [(50.0, 10.0),  # front
           (60.0, 20.0),  # front
           (55.0, 20.0),  # dominated by (60, 20) (same MACs, lower acc) → rank 1
           (50.0, 15.0),  # dominated by (50, 10) (same acc, more MACs) → rank 1
           (60.0, 20.0),  # duplicate of a front point: same rank 0
           (40.0, 30.0)]  # dominated by everything above, through (55, 20) → rank 2
    up, down = np.array(pts).T
    assert pareto_ranks(up, down).tolist() == [0, 0, 1, 1, 0, 2]


def test_pareto_ranks_equal_brute_force_with_ties():
    rng = np.random.default_rng(0)
    up, down = rng.integers(0, 12, 250).astype(float), rng.integers(0, 12, 250).astype(float)
    assert np.array_equal(pareto_ranks(up, down), _brute_ranks(up, down))
    with pytest.raises(ValueError):
        pareto_ranks(np.array([1.0, np.nan]), np.array([1.0, 2.0]))


def test_best_and_worst_sets():
    rng = np.random.default_rng(1)
    up, down = rng.normal(size=400), rng.normal(size=400)
    ranks = pareto_ranks(up, down)
    best, worst = best_and_worst(up, down, max_rank=3)
    given = best_and_worst(up, down, max_rank=3, ranks=ranks)
    assert np.array_equal(given[0], best) and np.array_equal(given[1], worst)
    assert set(best) == set(np.flatnonzero(ranks < 3)) and len(worst) == len(best)
    inv = pareto_ranks(-up, -down)
    assert inv[worst].max() <= inv[np.setdiff1d(np.arange(400), worst)].min()  # worst = lowest inverse ranks
    assert up[worst].mean() < up.mean() < up[best].mean()


def test_pca_recovers_a_planted_linear_relation():
    rng = np.random.default_rng(2)
    direction = np.array([1.0, -2.0, 0.0, 0.5, 0.0, 1.0])
    direction /= np.linalg.norm(direction)
    t = rng.normal(size=(500, 1)) * 3
    x = 7 + t * direction + 0.05 * rng.normal(size=(500, 6))
    fit = pca(x, 2)
    assert abs(fit.components[0] @ direction) > 0.999
    assert fit.explained_variance_ratio[0] > 0.99
    assert fit.components[0][np.abs(fit.components[0]).argmax()] > 0  # sign convention
    assert np.allclose(fit.transform(x), fit.scores)
    assert abs(fit.components[0] @ fit.components[1]) < 1e-9


def test_design_ratios_by_hand():
    wrn = Arch.parse("5-10-5-10-5-10")
    assert depth_share(wrn) == pytest.approx(15 / 45)
    assert width_per_depth(wrn) == pytest.approx(0.5 * (160 / 5 + 320 / 5))
    assert width_per_depth(Arch.parse("4-8-11-16-4-8")) == pytest.approx(0.5 * (128 / 4 + 512 / 11))


def test_correlations_by_hand():
    assert kendall_tau([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)
    assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1)
    # τ-b with ties: x=[1,1,2], y=[1,2,3]: C=2, D=0, tied-x pairs 1 → 2/sqrt(2·3)
    assert kendall_tau([1, 1, 2], [1, 2, 3]) == pytest.approx(2 / np.sqrt(6))
    assert kendall_tau([1, 2, np.nan, 3], [1, 3, 0, 2]) == pytest.approx(1 / 3)  # NaN pairs dropped
    for x, y in (([1.0], [2.0]), ([1, 1, 1], [1, 2, 3]), ([1, 2, 3], [5, 5, 5]), ([np.nan, 1], [1, np.nan])):
        assert np.isnan(kendall_tau(x, y))
    assert spearman([1, 2, 3, 4], [10, 20, 30, 1000]) == pytest.approx(1.0)
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(pearson([1, 2.5, 2.5, 4], [1, 2, 3, 4]))
    assert pearson([1, 2, np.nan, 3], [2, 4, 5, 6]) == pytest.approx(1.0)
