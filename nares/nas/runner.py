"""Many seeded searches in parallel processes, and the published results table.

Run i of a batch uses seed `seed + i`. Worker processes are started with `spawn` and use one
BLAS/OpenMP thread each, so `workers` processes use `workers` cores.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from nares.errors import NaresError
from nares.nas.algorithms import ALGORITHMS, run_one
from nares.nas.encoding import arch_of, code_of
from nares.space import N_ARCHS

# Columns of the results table (PROTOCOL §6: validation and test metrics of the best found architecture).
TABLE_METRICS = ("VAL_CLEAN_ACC", "VAL_PGD_ACC", "TEST_CLEAN_ACC", "TEST_PGD_ACC", "TEST_CW_ACC", "TEST_AA_ACC")


@dataclass(frozen=True)
class RunResult:
    algorithm: str
    seed: int
    best_code: int
    trajectory: np.ndarray  # best objective after each distinct query
    seconds: float

    @property
    def best_arch(self):
        return arch_of(self.best_code)


def objective_by_code(dataset, objective: str) -> np.ndarray:
    """The search objective of every architecture indexed by code; the dataset must cover the space."""
    if len(dataset) != N_ARCHS:
        raise NaresError(f"the NAS benchmark needs all {N_ARCHS} architectures; {dataset.source} holds {len(dataset)}")
    values = np.empty(N_ARCHS)
    codes = np.array([code_of(a) for a in dataset.archs()])
    values[codes] = dataset.objective_values(objective)  # refuses test metrics
    return values


_VALUES: np.ndarray | None = None
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _init_worker(values: np.ndarray) -> None:
    global _VALUES
    _VALUES = values


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


def _task(args: tuple[str, int, int, dict]) -> RunResult:
    name, budget, seed, settings = args
    t0 = time.perf_counter()
    oracle = run_one(name, _VALUES, budget, seed, settings)  # type: ignore[arg-type]
    return RunResult(name, seed, oracle.best_code, np.asarray(oracle.trajectory, dtype=np.float64),
                     time.perf_counter() - t0)


def _check_algorithm(name: str) -> None:
    if name not in ALGORITHMS:
        raise NaresError(f"unknown algorithm {name!r} (algorithms: {', '.join(ALGORITHMS)})")


def settings_for(name: str, nas_cfg: dict) -> dict:
    """The settings of algorithm `name`: its section `nas_cfg[name]` (random search has none)."""
    _check_algorithm(name)
    return {} if name == "random_search" else dict(nas_cfg[name])


def run_many(name: str, values: np.ndarray, *, runs: int, budget: int, seed: int = 0, settings: dict | None = None,
             workers: int | None = None) -> list[RunResult]:
    """`runs` searches of algorithm `name` (seeds seed..seed+runs-1), results in seed order."""
    _check_algorithm(name)
    if runs < 1:
        raise NaresError(f"runs={runs!r} must be positive")
    jobs = [(name, budget, seed + i, settings or {}) for i in range(runs)]
    workers = max(1, min(workers or os.cpu_count() or 1, runs))
    if workers == 1:
        _init_worker(values)
        return [_task(j) for j in jobs]
    ctx = mp.get_context("spawn")
    with _one_thread_per_process():
        pool = ctx.Pool(workers, initializer=_init_worker, initargs=(values,))
    with pool:
        return pool.map(_task, jobs, chunksize=max(1, runs // (4 * workers)))


def summarize(dataset, results: list[RunResult], *, objective: str, seconds: float) -> dict:
    """Mean ± std (population) of each table metric over the best found architectures of `results`."""
    rows = np.array([dataset.id_of(r.best_arch) for r in results])
    opt_arch, _ = dataset.optimum(objective)
    metrics = {}
    for m in TABLE_METRICS:
        v = np.array([dataset.metric(int(i), m) for i in rows], dtype=np.float64)
        metrics[m] = {"mean": float(v.mean()), "std": float(v.std())}
    traj = np.stack([r.trajectory for r in results])
    return {
        "algorithm": results[0].algorithm,
        "runs": len(results),
        "metrics": metrics,
        "found_optimum": float(np.mean([r.best_arch == opt_arch for r in results])),
        "mean_trajectory": traj.mean(axis=0).round(4).tolist(),
        "seconds": round(seconds, 2),
        "seconds_per_run": round(float(np.mean([r.seconds for r in results])), 3),
    }


def optimum_row(dataset) -> dict[str, float]:
    """The best value in the data of every table metric (each column's own maximum)."""
    return {m: float(dataset.optimum(m)[1]) for m in TABLE_METRICS}


def format_table(report: dict) -> str:
    """The published table: one row per algorithm (mean ± std), then the optimum in the data."""
    head = ["algorithm", *TABLE_METRICS, "found opt.", "seconds"]
    lines = [[r["algorithm"], *(f"{r['metrics'][m]['mean']:.2f} ± {r['metrics'][m]['std']:.2f}" for m in TABLE_METRICS),
              f"{100 * r['found_optimum']:.1f}%", f"{r['seconds']:.1f}"] for r in report["rows"]]
    lines.append(["optimum", *(f"{report['optimum'][m]:.2f}" for m in TABLE_METRICS), "", ""])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    title = (f"NAS benchmark: objective {report['objective']} (maximised), budget {report['budget']} queries, "
             f"{report['runs']} runs per algorithm, data {report['source']}")
    return "\n".join([title, fmt.format(*head), *(fmt.format(*ln) for ln in lines)])
