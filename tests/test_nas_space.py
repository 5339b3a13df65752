"""The NAS algorithms take the search space: a 64-architecture WRN sub-space of a preset, searched exactly."""

from __future__ import annotations

import numpy as np
import pytest

from nares.errors import NaresError
from nares.nas.algorithms import ALGORITHMS, run_one
from nares.nas.runner import run_many
from nares.spaces import space_for
from nares.spaces.wrn import WRNSpace

SUB = space_for({"space": {"depths": [4, 5], "widths": [8, 10]}})
SETTINGS = {"random_search": {}, "local_search": {"n_init": 4},
            "regularized_evolution": {"population": 8, "tournament": 3},
            "bananas": {"n_init": 8, "ensemble": 2, "proposals": 2, "candidates": 10, "parents": 3}}


def _planted() -> np.ndarray:
    """Objective = number of coordinates at their larger choice (the largest architecture is the optimum)."""
    return np.array([float(np.sum(SUB.digits(c)[0])) for c in range(SUB.size)])


@pytest.mark.parametrize("name", list(ALGORITHMS))
def test_every_algorithm_searches_the_sub_space(name):
    values = _planted()
    o = run_one(name, values, 30, seed=1, settings=SETTINGS[name], space=SUB)
    assert len(o.seen) == len(o.trajectory) == 30 and all(0 <= c < 64 for c in o.seen)
    assert o.trajectory == sorted(o.trajectory) and o.trajectory[-1] == max(values[c] for c in o.seen)


def test_random_search_with_the_whole_budget_finds_the_optimum_and_workers_agree():
    values = _planted()
    o = run_one("random_search", values, SUB.size, seed=0, settings={}, space=SUB)
    assert SUB.arch_of_code(o.best_code) == SUB.references["largest"]
    one = run_many("local_search", values, runs=3, budget=20, settings=SETTINGS["local_search"], workers=1, space=SUB)
    two = run_many("local_search", values, runs=3, budget=20, settings=SETTINGS["local_search"], workers=2, space=SUB)
    assert [(r.best_code, r.trajectory.tolist()) for r in one] == [(r.best_code, r.trajectory.tolist()) for r in two]
    assert all(r.best_arch in list(SUB.enumerate()) for r in two)


def test_values_of_another_space_are_refused():
    with pytest.raises(NaresError, match="100 objective values for the 64 architectures of space 'wrn'"):
        run_one("random_search", np.zeros(100), 5, seed=0, settings={}, space=SUB)
    class Renamed(WRNSpace):
        name = "wrn-sub"

    with pytest.raises(NaresError, match="published variant reproduces the official WRN optimizers"):
        run_many("random_search", _planted(), runs=1, budget=5, variant="published", space=Renamed([4, 5], [8, 10]))
