"""Many seeded searches in parallel processes, and the published results table.

Run i of a batch uses seed `seed + i`. Worker processes are started with `spawn` and use one
BLAS/OpenMP thread each, so `workers` processes use `workers` cores. `variant` is "default" (the
corrected searches, `nares.nas.algorithms`) or "published" (the official optimizers' behaviour,
`nares.nas.published`: runs may use more queries than the budget; the best is the latest of ties; WRN
only). Searches run over the search space passed in (default WRN): codes are positions in its enumeration.

`search_problem(dataset, objective)` decides what a dataset lets NAS search: its whole space when it answers
every architecture of an enumerable space, else only the architectures it answers (`AnsweredSpace`: neighbours
and mutations restricted to them, the budget capped at their number), said in one line (`SearchProblem.note`).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nares.errors import NaresError
from nares.nas.algorithms import SECTIONS, canonical, run_one
from nares.nas.subspace import AnsweredSpace
from nares.spaces import SearchSpace, get_space

# Columns of the results table (PROTOCOL §6: validation and test metrics of the best found architecture).
TABLE_METRICS = ("VAL_CLEAN_ACC", "VAL_PGD_ACC", "TEST_CLEAN_ACC", "TEST_PGD_ACC", "TEST_CW_ACC", "TEST_AA_ACC")


@dataclass(frozen=True)
class RunResult:
    algorithm: str
    seed: int
    best_code: int
    trajectory: np.ndarray  # best objective after each distinct query (its length: the queries used)
    seconds: float
    variant: str = "default"
    space: SearchSpace = field(default_factory=lambda: get_space("wrn"), repr=False, compare=False)

    @property
    def best_arch(self) -> Any:
        return self.space.arch_of_code(self.best_code)


def objective_by_code(dataset, objective: str, space: SearchSpace | None = None) -> np.ndarray:
    """The search objective of every architecture of `space` (default: the dataset's, else WRN) indexed by
    code; the dataset must cover the space."""
    space = space or getattr(dataset, "space", None) or get_space("wrn")
    n = space.size
    if len(dataset) != n:
        raise NaresError(f"the NAS benchmark needs all {n} architectures; {dataset.source} holds {len(dataset)}")
    values = np.empty(n)
    codes = np.array([space.code_of(a) for a in dataset.archs()])
    values[codes] = dataset.objective_values(objective)  # refuses test metrics
    return values


@dataclass(frozen=True)
class SearchProblem:
    """What a search runs over: `space` (the whole space, or the answered architectures) and `values`, the
    objective of each of its codes; `searched` architectures of the `of` the dataset's id map covers."""

    space: SearchSpace
    values: np.ndarray
    searched: int
    of: int
    source: str = ""

    @property
    def restricted(self) -> bool:
        return isinstance(self.space, AnsweredSpace)

    def budget(self, asked: int) -> int:
        """The budget a run gets: `asked`, capped at the number of architectures searched."""
        return min(int(asked), self.searched) if self.restricted else int(asked)

    def note(self, asked: int) -> str:
        """One line saying what is searched (empty for a whole, fully answered space)."""
        if not self.restricted:
            return ""
        capped = self.budget(asked)
        return (f"nas: {self.source} answers {self.searched:,} of {self.of:,} architectures of space "
                f"{self.space.name!r}: searching those {self.searched:,} only (neighbours and mutations restricted to "
                f"them), budget {capped:,}" + (f" (capped from {asked:,})" if capped < asked else ""))

    def to_json(self, asked: int) -> dict:
        return {"archs": self.searched, "of": self.of, "restricted": self.restricted, "budget_asked": int(asked)}


def search_problem(dataset, objective: str) -> SearchProblem:
    """The search over `dataset` (its `space`, `archs()` and `objective_values`, NaN where unanswered): the whole
    space when the dataset answers every architecture of an enumerable space, else an `AnsweredSpace` of the
    answered ones in the dataset's id order. A dataset answering none is one NaresError line."""
    space = getattr(dataset, "space", None) or get_space("wrn")
    archs = list(dataset.archs())
    values = np.asarray(dataset.objective_values(objective), dtype=np.float64)  # refuses test metrics
    answered = ~np.isnan(values)
    source = str(getattr(dataset, "source", "the dataset"))
    if not answered.any():
        raise NaresError(f"{source} answers {objective} for none of its {len(archs)} architectures")
    if answered.all() and space.size is not None and len(archs) == space.size:
        out = np.empty(space.size)
        out[np.array([space.code_of(a) for a in archs])] = values
        return SearchProblem(space, out, space.size, space.size, source)
    keep = np.flatnonzero(answered)
    return SearchProblem(AnsweredSpace(space, [archs[i] for i in keep]), values[keep], len(keep), len(archs), source)


_VALUES: np.ndarray | None = None
_SPACE: SearchSpace | None = None
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _init_worker(values: np.ndarray, space: SearchSpace) -> None:
    global _VALUES, _SPACE
    _VALUES, _SPACE = values, space


@contextlib.contextmanager
def _one_thread_per_process() -> Iterator[None]:
    """Spawned workers inherit these variables, so each uses one BLAS/OpenMP thread (no oversubscription)."""
    saved = {k: os.environ.get(k) for k in _THREAD_VARS}
    os.environ.update(dict.fromkeys(_THREAD_VARS, "1"))
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


VARIANTS = ("default", "published")


def _task(args: tuple[str, int, int, dict, str]) -> RunResult:
    name, budget, seed, settings, variant = args
    t0 = time.perf_counter()
    if variant == "published":
        from nares.nas import published

        run = published.run_one(name, _VALUES, budget, seed, settings)  # type: ignore[arg-type]
    else:
        run = run_one(name, _VALUES, budget, seed, settings, _SPACE)  # type: ignore[arg-type,assignment]
    return RunResult(name, seed, run.best_code, np.asarray(run.trajectory, dtype=np.float64),
                     time.perf_counter() - t0, variant, _SPACE)  # type: ignore[arg-type]


def _check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise NaresError(f"unknown variant {variant!r} (variants: {', '.join(VARIANTS)})")


def settings_for(name: str, nas_cfg: dict, variant: str = "default") -> dict:
    """The settings of algorithm `name`: its params.yaml section (`SECTIONS`; random search has none),
    or for the published variant the official configs (`nares.nas.published.PUBLISHED_SETTINGS`)."""
    name = canonical(name)
    _check_variant(variant)
    if variant == "published":
        from nares.nas.published import PUBLISHED_SETTINGS

        return dict(PUBLISHED_SETTINGS[name])
    return dict(nas_cfg[SECTIONS[name]]) if name in SECTIONS else {}


def run_many(name: str, values: np.ndarray, *, runs: int, budget: int, seed: int = 0, settings: dict | None = None,
             workers: int | None = None, variant: str = "default", space: SearchSpace | None = None) -> list[RunResult]:
    """`runs` searches of algorithm `name` over `space` (default WRN; seeds seed..seed+runs-1), in seed order."""
    name = canonical(name)
    _check_variant(variant)
    space = space or get_space("wrn")
    if variant == "published" and (space.name != "wrn" or isinstance(space, AnsweredSpace)):
        raise NaresError(f"the published variant reproduces the official WRN optimizers over all 15,625 WRNs; "
                         f"{space!r} runs the default variant only")
    if runs < 1:
        raise NaresError(f"runs={runs!r} must be positive")
    jobs = [(name, budget, seed + i, settings or {}, variant) for i in range(runs)]
    workers = max(1, min(workers or os.cpu_count() or 1, runs))
    if workers == 1:
        _init_worker(values, space)
        return [_task(j) for j in jobs]
    ctx = mp.get_context("spawn")
    with _one_thread_per_process():
        pool = ctx.Pool(workers, initializer=_init_worker, initargs=(values, space))
    with pool:
        return pool.map(_task, jobs, chunksize=max(1, runs // (4 * workers)))


def table_metrics(dataset) -> tuple[str, ...]:
    """The columns of the results table this dataset holds: `TABLE_METRICS`, less those a long-table release of
    another suite lacks (its `metric_names()`)."""
    names = getattr(dataset, "metric_names", None)
    if names is None:
        return TABLE_METRICS
    have = set(names())
    return tuple(m for m in TABLE_METRICS if m in have)


def _class_of(dataset, arch) -> int:
    """The id of the architecture trained for `arch` (its representative in a space with classes)."""
    rep = getattr(dataset, "representative_id", None)
    return int(rep(arch)) if rep is not None else int(dataset.id_of(arch))


def summarize(dataset, results: list[RunResult], *, objective: str, seconds: float) -> dict:
    """Mean ± std (population) of each table metric over the best found architectures of `results`; a run found
    the optimum when its best is the optimum's architecture (or, in a space with classes, of its class)."""
    rows = np.array([dataset.id_of(r.best_arch) for r in results])
    opt_arch, _ = dataset.optimum(objective)
    opt = _class_of(dataset, opt_arch)
    metrics = {}
    for m in table_metrics(dataset):
        v = np.array([dataset.metric(int(i), m) for i in rows], dtype=np.float64)
        metrics[m] = {"mean": float(v.mean()), "std": float(v.std())}
    used = np.array([len(r.trajectory) for r in results])
    traj = np.stack([np.pad(r.trajectory, (0, used.max() - len(r.trajectory)), mode="edge") for r in results])
    return {
        "algorithm": results[0].algorithm,
        "variant": results[0].variant,
        "runs": len(results),
        "metrics": metrics,
        "found_optimum": float(np.mean([_class_of(dataset, r.best_arch) == opt for r in results])),
        "queries": {"mean": float(used.mean()), "std": float(used.std()), "max": int(used.max())},
        "mean_trajectory": traj.mean(axis=0).round(4).tolist(),
        "seconds": round(seconds, 2),
        "seconds_per_run": round(float(np.mean([r.seconds for r in results])), 3),
    }


def optimum_row(dataset) -> dict[str, float]:
    """The best value in the data of every table metric the dataset holds (each column's own maximum)."""
    return {m: float(dataset.optimum(m)[1]) for m in table_metrics(dataset)}


def format_table(report: dict) -> str:
    """The published table: one row per algorithm (mean ± std), then the optimum in the data."""
    cols = list(report["optimum"])
    head = ["algorithm", *cols, "found opt.", "queries", "seconds"]
    lines = [[r["algorithm"] + (" (published)" if r.get("variant") == "published" else ""),
              *(f"{r['metrics'][m]['mean']:.2f} ± {r['metrics'][m]['std']:.2f}" for m in cols),
              f"{100 * r['found_optimum']:.1f}%", f"{r['queries']['mean']:.0f}", f"{r['seconds']:.1f}"]
             for r in report["rows"]]
    lines.append(["optimum", *(f"{report['optimum'][m]:.2f}" for m in cols), "", "", ""])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    title = (f"NAS benchmark: objective {report['objective']} (maximised), budget {report['budget']} queries, "
             f"{report['runs']} runs per algorithm, data {report['source']}")
    return "\n".join([title, fmt.format(*head), *(fmt.format(*ln) for ln in lines)])
