"""What one job of a sweep or a re-evaluation sends to an actor, and what happens to its result: the
`submit(actor, job)` / `on_done(job, result)` pairs `tasks.drive.drive` runs.

A finished job's run folder is restored from the object store (when another node wrote it), ingested into the
tables and, for a sweep, checked complete. With `store=None` (dry runs) nothing is ingested.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

from nares.sweep import paths
from nares.sweep.queue import Job
from nares.sweep.selection import SweepError

Calls = tuple[Callable, Callable[[Job, dict], None]]


def _ingest(store, tables_root: str, preset: str, seed: int, job: Job) -> None:
    from nares.store.ingest import ingest_run
    from nares.train.store_state import RunSync

    run = paths.run_dir(preset, seed, job.arch)
    RunSync.for_dir(store, run).restore(run)  # the worker's files, verified, when it ran on another node
    ingest_run(store, Path(tables_root), run, arch_id=job.arch_id)


def sweep_calls(preset: str, seed: int, tables_root: str, store, space: str, evaluations: list[str]) -> Calls:
    """Train one architecture in its run folder and evaluate exactly `evaluations` (the suite's, in order); ingest
    it and check the store holds it complete (`space`: the preset's search space name, which decides what complete
    means)."""

    def submit(actor, job: Job):
        return actor.run.remote(job.arch, str(paths.run_dir(preset, seed, job.arch)), list(evaluations))

    def on_done(job: Job, result: dict) -> None:
        if store is None:
            return
        from nares.store.ingest import is_complete

        _ingest(store, tables_root, preset, seed, job)
        if not is_complete(tables_root, job.arch_id, space):
            raise SweepError(f"{job.arch} was ingested but the store does not hold it complete")

    return submit, on_done


def reevaluate_calls(preset: str, seed: int, tables_root: str, store,
                     cells: dict[int, list[tuple[str, list[str]]]]) -> Calls:
    """Compute an architecture's `cells` (checkpoint → metrics) from its checkpoints, fetched from the store
    when the run folder lacks them (another machine trained it); ingest the new ledger rows."""
    from nares.store.manifest import checkpoint_objects, ensure_checkpoint

    objects = functools.cache(functools.partial(checkpoint_objects, tables_root))  # read once, when first needed

    def submit(actor, job: Job):
        run = paths.run_dir(preset, seed, job.arch)
        if store is not None:
            for checkpoint, _ in cells[job.arch_id]:
                ensure_checkpoint(store, objects, job.arch_id, checkpoint, run)
        return actor.evaluate.remote(str(run), cells[job.arch_id])

    def on_done(job: Job, result: dict) -> None:
        if store is not None:
            _ingest(store, tables_root, preset, seed, job)

    return submit, on_done
