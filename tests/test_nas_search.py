"""NAS: encoding tables, the query-counting oracle, and the four searches on a planted objective."""

from __future__ import annotations

import numpy as np
import pytest

from factory.commands import nas as nas_command
from nares.config import load_preset
from nares.errors import NaresError
from nares.nas import ALGORITHMS, BudgetExhausted, Oracle, run_many
from nares.nas.algorithms import run_one
from nares.nas.runner import settings_for
from nares.spaces.wrn import N_ARCHS, SPACE, all_archs, neighbours, one_hot
from nares.synthetic import PLANTED_OPTIMUM, VAL_NOISE_BOUND, planted_val_pgd

NAS = load_preset("full")["nas"]


@pytest.fixture(scope="module")
def planted() -> np.ndarray:
    rng = np.random.default_rng(11)
    return np.array([planted_val_pgd(a) for a in all_archs()]) + rng.uniform(-VAL_NOISE_BOUND, VAL_NOISE_BOUND, N_ARCHS)


def test_codes_neighbours_and_one_hot_match_the_space():
    archs = all_archs()
    for i in (0, 1, 5, 777, 9999, N_ARCHS - 1):
        assert SPACE.code_of(archs[i]) == i and SPACE.arch_of_code(i) == archs[i]
        assert {SPACE.arch_of_code(int(c)) for c in SPACE.neighbour_table()[i]} == set(neighbours(archs[i]))
        assert SPACE.encoding_table()[i].tolist() == one_hot(archs[i])
    assert SPACE.neighbour_table().shape == (N_ARCHS, 24) and SPACE.encoding_table().sum(axis=1).max() == 6


def test_oracle_counts_distinct_queries_and_tracks_the_best():
    values = np.array([3.0, 1.0, 5.0, 2.0] + [0.0] * (N_ARCHS - 4))
    o = Oracle(values, budget=3)
    assert o.query(1) == 1.0 and o.query(0) == 3.0 and o.query(1) == 1.0  # a repeat costs nothing
    assert o.remaining == 1 and o.best_code == 0
    assert o.query(3) == 2.0
    assert o.trajectory == [1.0, 3.0, 3.0] and o.best_code == 0
    with pytest.raises(BudgetExhausted):
        o.query(2)
    assert o.query(3) == 2.0  # seen architectures stay free after the budget is spent
    with pytest.raises(NaresError, match="budget=0"):
        Oracle(values, 0)
    with pytest.raises(NaresError, match="missing for 1"):
        Oracle(np.r_[np.nan, values[1:]], 5)


def test_random_search_spends_the_budget_on_distinct_archs(planted):
    o = run_one("random_search", planted, 500, seed=3, settings={})
    assert len(o.seen) == 500 and len(o.trajectory) == 500
    assert o.trajectory[-1] == max(o.seen.values()) == planted[o.best_code]
    assert all(a <= b for a, b in zip(o.trajectory, o.trajectory[1:], strict=False))
    assert run_one("random_search", planted, 500, seed=3, settings={}).trajectory == o.trajectory
    assert run_one("random_search", planted, 500, seed=4, settings={}).trajectory != o.trajectory


@pytest.mark.parametrize("name", ["local_search", "evolution", "bananas"])
def test_guided_searches_find_the_planted_optimum_within_budget(planted, name):
    opt = SPACE.code_of(PLANTED_OPTIMUM)
    assert int(np.argmax(planted)) == opt
    seeds = range(2) if name == "bananas" else range(6)
    for seed in seeds:
        o = run_one(name, planted, NAS["budget"], seed, settings_for(name, NAS))
        assert len(o.seen) == NAS["budget"]
        assert o.best_code == opt, (name, seed)


def test_local_search_restarts_at_a_local_optimum():
    """On an objective whose only local optimum is code 0 (value falls with the digit sum), every
    climb ends at code 0; afterwards each restart climbs to it again, so the best is code 0."""
    from nares.spaces.wrn import SPACE

    values = -SPACE.digits(np.arange(N_ARCHS)).sum(axis=1).astype(float)
    o = run_one("local_search", values, 300, seed=2, settings={"n_init": 10})
    assert o.best_code == 0 and len(o.seen) == 300
    first_hit = o.trajectory.index(0.0)
    assert first_hit < 300 - 24  # reached, then the 24 neighbours were checked and the search restarted


def test_parallel_runs_equal_serial_runs(planted):
    serial = run_many("evolution", planted, runs=3, budget=80, seed=7, settings=settings_for("evolution", NAS), workers=1)
    parallel = run_many("evolution", planted, runs=3, budget=80, seed=7, settings=settings_for("evolution", NAS), workers=2)
    assert [r.seed for r in parallel] == [7, 8, 9]
    for a, b in zip(serial, parallel, strict=True):
        assert a.best_code == b.best_code and np.array_equal(a.trajectory, b.trajectory)
    with pytest.raises(NaresError, match="unknown algorithm 'annealing'"):
        run_many("annealing", planted, runs=1, budget=5)
    assert set(ALGORITHMS) == {"random_search", "local_search", "regularized_evolution", "bananas"}
    assert tuple(ALGORITHMS) == nas_command.ALGOS  # the CLI's copy (kept there for a fast start-up)
    with pytest.raises(NaresError, match="unknown algorithm 'annealing'"):
        settings_for("annealing", NAS)
    assert settings_for("random_search", NAS) == {} and settings_for("evolution", NAS) == dict(NAS["evolution"])
    # the published name and the short one are the same algorithm, with the same settings section
    assert settings_for("regularized_evolution", NAS) == dict(NAS["evolution"])
    alias = run_many("regularized_evolution", planted, runs=1, budget=40, seed=3, settings=settings_for("evolution", NAS))
    assert alias[0].algorithm == serial[0].algorithm == "regularized_evolution"
