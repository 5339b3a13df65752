"""The query-counting oracle: the only way a search reads the objective."""

from __future__ import annotations

import numpy as np

from nares.errors import NaresError


class BudgetExhausted(Exception):
    """Raised by `Oracle.query` when a new architecture is asked for after the budget is spent."""


class Oracle:
    """Objective values of all codes behind a budget of distinct queries.

    Re-querying an architecture already seen is free. `trajectory[i]` is the best value after the
    (i+1)-th distinct query; `best_code` is the best architecture found (earliest on ties).
    """

    def __init__(self, values: np.ndarray, budget: int):
        if budget < 1:
            raise NaresError(f"budget={budget!r} must be a positive number of queries")
        if np.isnan(values).any():
            raise NaresError(f"the objective is missing for {int(np.isnan(values).sum())} architectures")
        self.values = values
        self.budget = budget
        self.seen: dict[int, float] = {}
        self.trajectory: list[float] = []
        self.best_code = -1

    @property
    def remaining(self) -> int:
        return self.budget - len(self.seen)

    def query(self, code: int) -> float:
        code = int(code)
        if code in self.seen:
            return self.seen[code]
        if len(self.seen) >= self.budget:
            raise BudgetExhausted
        v = float(self.values[code])
        self.seen[code] = v
        if not self.trajectory or v > self.trajectory[-1]:
            self.best_code = code
            self.trajectory.append(v)
        else:
            self.trajectory.append(self.trajectory[-1])
        return v
