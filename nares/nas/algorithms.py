"""The four searches of PROTOCOL §6. Each runs on an `Oracle` until its budget is spent.

A search is `algo(oracle, rng, **settings)`; settings are `cfg["nas"][<name>]` of params.yaml.
Architectures are integer codes (`nares.nas.encoding`); every random choice comes from `rng`.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable

import numpy as np

from nares.nas.encoding import neighbour_table, one_hot_table
from nares.nas.oracle import BudgetExhausted, Oracle
from nares.space import N_ARCHS


def _random_unseen(oracle: Oracle, rng: np.random.Generator) -> int:
    while True:
        code = int(rng.integers(N_ARCHS))
        if code not in oracle.seen:
            return code


def random_search(oracle: Oracle, rng: np.random.Generator) -> None:
    """Query distinct architectures drawn uniformly at random."""
    for code in rng.permutation(N_ARCHS):
        oracle.query(code)


def local_search(oracle: Oracle, rng: np.random.Generator, n_init: int) -> None:
    """Best of `n_init` random architectures, then first-improvement hill-climbing over the 24
    neighbours in random order; at a local optimum, restart from a random unseen architecture."""
    nbrs = neighbour_table()
    start = rng.choice(N_ARCHS, size=n_init, replace=False)
    current = int(start[int(np.argmax([oracle.query(c) for c in start]))])
    while True:
        value = oracle.query(current)
        for nb in rng.permutation(nbrs[current]):
            if oracle.query(nb) > value:
                current = nb
                break
        else:
            current = _random_unseen(oracle, rng)


def regularized_evolution(oracle: Oracle, rng: np.random.Generator, population: int, tournament: int) -> None:
    """Aging evolution: `population` random architectures; each step mutates one coordinate of the best
    of `tournament` members drawn at random, adds the child and removes the oldest member."""
    nbrs = neighbour_table()
    pop = deque((int(c), oracle.query(c)) for c in rng.choice(N_ARCHS, size=population, replace=False))
    for _ in range(100 * oracle.budget):  # bound: children already seen cost nothing
        picks = rng.choice(len(pop), size=min(tournament, len(pop)), replace=False)
        parent = max((pop[i] for i in picks), key=lambda cv: cv[1])[0]
        child = int(nbrs[parent][rng.integers(nbrs.shape[1])])
        pop.append((child, oracle.query(child)))
        pop.popleft()


def _mutation_candidates(oracle: Oracle, rng: np.random.Generator, parents: int, candidates: int) -> np.ndarray:
    nbrs = neighbour_table()
    ranked = sorted(oracle.seen.items(), key=lambda cv: -cv[1])[:parents]
    out: dict[int, None] = {}
    per_parent = -(-candidates // len(ranked))
    for code, _ in ranked:
        fresh = [int(c) for c in rng.permutation(nbrs[code]) if int(c) not in oracle.seen and int(c) not in out]
        out.update(dict.fromkeys(fresh[:per_parent]))
    while len(out) < candidates:  # parents' neighbourhoods exhausted: fill with random unseen ones
        out[_random_unseen(oracle, rng)] = None
    return np.fromiter(out, dtype=np.int64)[:candidates]


def bananas(oracle: Oracle, rng: np.random.Generator, n_init: int, ensemble: int, proposals: int,
            candidates: int, parents: int) -> None:
    """BANANAS: `n_init` random architectures; each round fits an ensemble of `ensemble` MLPs on the
    one-hot encodings, makes `candidates` by one-coordinate mutations of the `parents` best so far and
    queries the `proposals` best under independent Thompson sampling (one draw from N(mean, std) of
    the ensemble's predictions per candidate). The ensemble is trained incrementally (`nares.nas.ensemble`)."""
    from nares.nas.ensemble import FIRST_STEPS, ROUND_STEPS, MLPEnsemble

    enc = one_hot_table()
    for c in rng.choice(N_ARCHS, size=n_init, replace=False):
        oracle.query(c)
    model = MLPEnsemble(enc.shape[1], ensemble, seed=int(rng.integers(2**31)))
    steps = FIRST_STEPS
    while True:
        codes = np.fromiter(oracle.seen, dtype=np.int64)
        model.fit(enc[codes], np.fromiter(oracle.seen.values(), dtype=np.float64), steps)
        steps = ROUND_STEPS
        cand = _mutation_candidates(oracle, rng, parents, candidates)
        pred = model.predict(enc[cand])
        draw = rng.normal(pred.mean(axis=0), pred.std(axis=0))
        for c in cand[np.argsort(-draw, kind="stable")[:proposals]]:
            oracle.query(c)


ALGORITHMS: dict[str, Callable[..., None]] = {
    "random_search": random_search,
    "local_search": local_search,
    "evolution": regularized_evolution,
    "bananas": bananas,
}


def run_one(name: str, values: np.ndarray, budget: int, seed: int, settings: dict) -> Oracle:
    """One seeded search; returns its spent oracle (trajectory, best_code)."""
    oracle = Oracle(values, budget)
    with contextlib.suppress(BudgetExhausted):
        ALGORITHMS[name](oracle, np.random.default_rng(seed), **settings)
    return oracle
