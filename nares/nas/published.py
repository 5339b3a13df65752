"""The published variant: the four searches as the official NARes optimizers run them (PROTOCOL §9).

These reproduce the official code's behaviour, bugs included, because the published NAS table was made
with it: the same draws from the same sources (Python's `random` for the search space, numpy's legacy
global generator for tournaments and Thompson sampling; both seeded with the run seed, as
`nas_benchmark.py` seeds them), the same query bookkeeping (distinct architectures counted, a budget
checked only where the official loops check it) and the same tie rule for the reported best (the
latest sampled of the best). Given the same objective values and seed, random search, local search and
regularized evolution query exactly the official sequence of architectures. Facts reproduced:

- local search compares with a function returning -1/0/1 and tests it for truth, so it moves to any
  neighbour that differs, better or worse (a random walk), and skips the budget check after a move,
  so runs end past the budget; it restarts by sampling 10 new random architectures;
- regularized evolution draws its initial population and each tournament with replacement;
- BANANAS: ensemble of 5 MLPs (20 layers × 32 units, ReLU, Xavier-uniform init), each trained from
  scratch every round for 500 epochs, batch 32, Adam (lr 1e-3, betas 0.9/0.99) on MAE + 0.2·L1 of the
  output layer's weights, on the validation error (100 − objective); candidates are 10 random
  mutations of each of the best 50 (not de-duplicated, stopping at 100), 10 proposals by independent
  Thompson sampling; a round can end a few queries past the budget. The predictor is numpy here
  (the members stacked and trained together) and seeded, where the official torch code is unseeded.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np

from nares.compat.search_space import Arch, OneHotCodec, WRNSearchSpace
from nares.spaces.wrn import SPACE as WRN


class PublishedRun:
    """The official MetaOptimizer's state: `sampled` (architecture → value, in query order), the counter
    `queries` (distinct architectures) and its seeded random sources."""

    def __init__(self, values: np.ndarray, budget: int, seed: int):
        self.values = values
        self.total_queries = budget
        self.py = random.Random(seed)
        self.np = np.random.RandomState(seed)
        self.mlp_rng = np.random.default_rng([seed, 1])  # the predictor's own source (torch's, unseeded, there)
        self.space = WRNSearchSpace(rng=self.py)
        self.sampled: dict[Arch, float] = {}
        self.codes: list[int] = []

    @property
    def queries(self) -> int:
        return len(self.sampled)

    def query(self, arch: Arch) -> float:
        if arch in self.sampled:
            return self.sampled[arch]
        code = WRN.code_of(arch)
        v = float(self.values[code])
        self.sampled[arch] = v
        self.codes.append(code)
        return v

    def topk(self, k: int) -> list[Arch]:
        """The official `get_topk_archs`: ascending stable sort, reversed, so ties list the latest first."""
        return [a for a, _ in sorted(self.sampled.items(), key=lambda av: av[1])[::-1][:k]]

    @property
    def best_code(self) -> int:
        return WRN.code_of(self.topk(1)[0])

    @property
    def trajectory(self) -> list[float]:
        return np.maximum.accumulate(np.fromiter(self.sampled.values(), dtype=np.float64)).tolist()


def _cmp(old: float, new: float) -> int:
    """The official compare_metric for a maximised objective: 1 better, 0 equal, -1 worse."""
    return int(new > old) - int(new < old)


def random_search(run: PublishedRun) -> None:
    while run.queries < run.total_queries:
        arch = run.space.sample_arch()
        if arch not in run.sampled:
            run.query(arch)


def local_search(run: PublishedRun, n_init: int = 10, query_full_nbhd: bool = False) -> None:
    while run.queries < run.total_queries:
        if _local_search_round(run, n_init, query_full_nbhd):
            break


def _local_search_round(run: PublishedRun, n_init: int, query_full_nbhd: bool) -> bool:
    best, best_v, count = None, None, 0
    while count < n_init:
        arch = run.space.sample_arch()
        if arch not in run.sampled:
            v = run.query(arch)
            count += 1
            if best is None or _cmp(best_v, v) > 0:
                best, best_v = arch, v
            if run.queries >= run.total_queries:
                return True
    while True:
        moved = False
        for nb in run.space.get_neighbors(best, shuffle=True):
            if nb not in run.sampled:
                v = run.query(nb)
                if _cmp(best_v, v):  # truthy for -1 too: moves to worse neighbours as well
                    best, best_v, moved = nb, v, True
                    if not query_full_nbhd:
                        break  # leaves before the budget check below
                if run.queries >= run.total_queries:
                    return True
        if not moved:
            return False


def regularized_evolution(run: PublishedRun, population: int = 30, tournament: int = 10,
                          mutation_rate: float = 1.0) -> None:
    population = min(population, run.total_queries)
    pop = run.space.sample_archs(population)  # with replacement
    pop_v = [run.query(a) for a in pop]
    born = [0] * population
    iteration = 0
    while run.queries < run.total_queries:
        iteration += 1
        picks = run.np.choice(len(pop_v), tournament)  # with replacement
        parent = pop[picks[int(np.argmax([pop_v[i] for i in picks]))]]
        if run.py.random() < mutation_rate:
            child = run.space.get_random_neighbor(parent)
            oldest = int(np.argmin(born))
            pop[oldest], pop_v[oldest], born[oldest] = child, run.query(child), iteration


def bananas(run: PublishedRun, n_init: int = 10, ensemble: int = 5, proposals: int = 10, candidates: int = 100,
            parents: int = 10, patience_factor: int = 5, layers: int = 20, width: int = 32, epochs: int = 500,
            batch_size: int = 32, lr: float = 1e-3, l1_reg: float = 0.2) -> None:
    from nares.nas.published_mlp import MLPEnsemble

    codec = OneHotCodec(run.space)
    for arch in run.space.sample_archs(n_init):
        run.query(arch)
    while run.queries < run.total_queries:
        x = np.stack([codec.encode(a) for a in run.sampled]).astype(np.float32)
        y = np.array([100 - v for v in run.sampled.values()], dtype=np.float32)
        model = MLPEnsemble(x.shape[1], ensemble, layers, width, seed=int(run.mlp_rng.integers(2**31)))
        model.fit(x, y, epochs=epochs, batch_size=batch_size, lr=lr, l1_reg=l1_reg)
        cand = []
        for arch in run.topk(parents * patience_factor):
            if len(cand) >= candidates:
                break
            for _ in range(candidates // parents):
                new = run.space.get_random_neighbor(arch)
                if new not in run.sampled:
                    cand.append(new)
        xc = np.stack([codec.encode(a) for a in cand]).astype(np.float32)
        pred = model.predict(xc)
        draw = run.np.normal(pred.mean(axis=0), pred.std(axis=0))  # independent Thompson sampling
        for i in np.argsort(draw)[:proposals]:
            run.query(codec.decode(xc[i]))


# The official configs (configs/algo/*.yaml of the NARes code): fixed facts of the published runs, not
# settings of this project, so they live here and not in params.yaml; only the budget is taken from there.
PUBLISHED_SETTINGS: dict[str, dict] = {
    "random_search": {},
    "local_search": {"n_init": 10, "query_full_nbhd": False},
    "regularized_evolution": {"population": 30, "tournament": 10, "mutation_rate": 1.0},
    "bananas": {"n_init": 10, "ensemble": 5, "proposals": 10, "candidates": 100, "parents": 10, "patience_factor": 5,
                "layers": 20, "width": 32, "epochs": 500, "batch_size": 32, "lr": 1e-3, "l1_reg": 0.2},
}

ALGORITHMS: dict[str, Callable[..., None]] = {
    "random_search": random_search,
    "local_search": local_search,
    "regularized_evolution": regularized_evolution,
    "bananas": bananas,
}


def run_one(name: str, values: np.ndarray, budget: int, seed: int, settings: dict) -> PublishedRun:
    """One seeded search with the official behaviour; returns its run (trajectory, best_code)."""
    run = PublishedRun(values, budget, seed)
    ALGORITHMS[name](run, **settings)
    return run
