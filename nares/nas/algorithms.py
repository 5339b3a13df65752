"""The four searches of PROTOCOL §6 (the default, corrected variant). Each runs on an `Oracle` until its
budget is spent: exactly `budget` distinct queries, the reported best the earliest of the best.

Corrections of the official optimizers (whose behaviour `nares.nas.published` reproduces): local
search moves only to a strictly better neighbour (first improvement) and restarts from a random unseen
architecture; evolution draws its initial population and tournaments without replacement; BANANAS'
predictor is smaller and trained incrementally (`nares.nas.ensemble`), its candidates de-duplicated.

A search is `algo(oracle, rng, space, **settings)`; settings are `cfg["nas"][SECTIONS[name]]` of params.yaml.
Architectures are integer codes of the enumerable search space `space` (positions in `space.enumerate()`;
neighbours and encodings from its `neighbour_table()` / `encoding_table()`); every random choice comes from `rng`.

A restricted space (`nares.nas.subspace.AnsweredSpace`: the architectures a release answers) has uneven, possibly
empty neighbourhoods and may be smaller than a setting: initial samples and populations are capped at its size, a
search ends (BudgetExhausted) once every architecture is queried, and in evolution a parent none of whose
neighbours is unseen mutates to a random unseen architecture (else a run could circle inside one connected part of
the answered set). On a whole space these rules never change a draw.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable

import numpy as np

from nares.nas.oracle import BudgetExhausted, Oracle
from nares.nas.subspace import AnsweredSpace
from nares.spaces import SearchSpace, get_space


def _random_unseen(oracle: Oracle, rng: np.random.Generator) -> int:
    if len(oracle.seen) >= len(oracle.values):  # every architecture queried: nothing left to search
        raise BudgetExhausted
    while True:
        code = int(rng.integers(len(oracle.values)))
        if code not in oracle.seen:
            return code


def random_search(oracle: Oracle, rng: np.random.Generator, space: SearchSpace) -> None:
    """Query distinct architectures drawn uniformly at random."""
    for code in rng.permutation(space.size):
        oracle.query(code)


def local_search(oracle: Oracle, rng: np.random.Generator, space: SearchSpace, n_init: int) -> None:
    """Best of `n_init` random architectures, then first-improvement hill-climbing over the neighbours
    (24 for WRN) in random order; at a local optimum, restart from a random unseen architecture."""
    nbrs = space.neighbour_table()
    start = rng.choice(space.size, size=min(n_init, space.size), replace=False)
    current = int(start[int(np.argmax([oracle.query(c) for c in start]))])
    while True:
        value = oracle.query(current)
        for nb in rng.permutation(nbrs[current]):
            if oracle.query(nb) > value:
                current = nb
                break
        else:
            current = _random_unseen(oracle, rng)


def regularized_evolution(oracle: Oracle, rng: np.random.Generator, space: SearchSpace, population: int,
                          tournament: int) -> None:
    """Aging evolution: `population` random architectures; each step mutates one coordinate of the best
    of `tournament` members drawn at random, adds the child and removes the oldest member."""
    nbrs = space.neighbour_table()
    sparse = isinstance(space, AnsweredSpace)
    pop = deque((int(c), oracle.query(c))
                for c in rng.choice(space.size, size=min(population, space.size), replace=False))
    for _ in range(100 * oracle.budget):  # bound: children already seen cost nothing
        picks = rng.choice(len(pop), size=min(tournament, len(pop)), replace=False)
        parent = max((pop[i] for i in picks), key=lambda cv: cv[1])[0]
        row = nbrs[parent]
        if sparse and all(int(c) in oracle.seen for c in row):
            child = _random_unseen(oracle, rng)
        else:
            child = int(row[rng.integers(len(row))])
        pop.append((child, oracle.query(child)))
        pop.popleft()


def _mutation_candidates(oracle: Oracle, rng: np.random.Generator, nbrs: np.ndarray, parents: int,
                         candidates: int) -> np.ndarray:
    ranked = sorted(oracle.seen.items(), key=lambda cv: -cv[1])[:parents]
    out: dict[int, None] = {}
    per_parent = -(-candidates // len(ranked))
    for code, _ in ranked:
        fresh = [int(c) for c in rng.permutation(nbrs[code]) if int(c) not in oracle.seen and int(c) not in out]
        out.update(dict.fromkeys(fresh[:per_parent]))
    unseen = len(oracle.values) - len(oracle.seen)
    if unseen == 0:
        raise BudgetExhausted  # every architecture queried
    while len(out) < min(candidates, unseen):  # parents' neighbourhoods exhausted: fill with random unseen ones
        out[_random_unseen(oracle, rng)] = None
    return np.fromiter(out, dtype=np.int64)[:candidates]


def bananas(oracle: Oracle, rng: np.random.Generator, space: SearchSpace, n_init: int, ensemble: int,
            proposals: int, candidates: int, parents: int) -> None:
    """BANANAS: `n_init` random architectures; each round fits an ensemble of `ensemble` MLPs on the
    space's encodings (one-hot for WRN), makes `candidates` by one-coordinate mutations of the `parents` best so far and
    queries the `proposals` best under independent Thompson sampling (one draw from N(mean, std) of
    the ensemble's predictions per candidate). The ensemble is trained incrementally (`nares.nas.ensemble`)."""
    from nares.nas.ensemble import FIRST_STEPS, ROUND_STEPS, MLPEnsemble

    enc, nbrs = space.encoding_table(), space.neighbour_table()
    for c in rng.choice(space.size, size=min(n_init, space.size), replace=False):
        oracle.query(c)
    model = MLPEnsemble(enc.shape[1], ensemble, seed=int(rng.integers(2**31)))
    steps = FIRST_STEPS
    while True:
        codes = np.fromiter(oracle.seen, dtype=np.int64)
        model.fit(enc[codes], np.fromiter(oracle.seen.values(), dtype=np.float64), steps)
        steps = ROUND_STEPS
        cand = _mutation_candidates(oracle, rng, nbrs, parents, candidates)
        pred = model.predict(enc[cand])
        draw = rng.normal(pred.mean(axis=0), pred.std(axis=0))
        for c in cand[np.argsort(-draw, kind="stable")[:proposals]]:
            oracle.query(c)


ALGORITHMS: dict[str, Callable[..., None]] = {
    "random_search": random_search,
    "local_search": local_search,
    "regularized_evolution": regularized_evolution,
    "bananas": bananas,
}
# Other accepted names → the published names above (keys of ALGORITHMS).
ALIASES = {"evolution": "regularized_evolution"}
# The params.yaml `nas` section of each algorithm's settings (random search has none).
SECTIONS = {"local_search": "local_search", "regularized_evolution": "evolution", "bananas": "bananas"}


def canonical(name: str) -> str:
    """The published name of an algorithm (`evolution` → `regularized_evolution`); unknown names refused."""
    from nares.errors import NaresError, shown

    key = ALIASES.get(name, name)
    if key not in ALGORITHMS:
        raise NaresError(f"unknown algorithm {shown(name)} (algorithms: {', '.join(ALGORITHMS)}; "
                         f"aliases: {', '.join(f'{a}={b}' for a, b in ALIASES.items())})")
    return key


def run_one(name: str, values: np.ndarray, budget: int, seed: int, settings: dict,
            space: SearchSpace | None = None) -> Oracle:
    """One seeded search over `space` (default WRN; `values` indexed by its codes); returns its spent oracle
    (trajectory, best_code)."""
    space = space or get_space("wrn")
    if len(values) != space.size:
        from nares.errors import NaresError

        raise NaresError(f"{len(values)} objective values for the {space.size} architectures of space {space.name!r}")
    oracle = Oracle(values, budget)
    with contextlib.suppress(BudgetExhausted):
        ALGORITHMS[canonical(name)](oracle, np.random.default_rng(seed), space, **settings)
    return oracle
