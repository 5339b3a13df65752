"""Driving a list of jobs through a Ray actor pool: connect, plan and start the pool, dispatch, journal every
event, stop on SIGTERM after the current epoch, and stop the pool again.

Prefect-free: a flow passes a `Reporter` (its logger and progress artifact). `submit(actor, job)` returns the
Ray reference of one job, `on_done(job, result)` takes a finished job's result (ingest, checks).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from nares.config import load_preset
from nares.sweep import paths
from nares.sweep.journal import Journal
from nares.sweep.queue import Job, WorkQueue
from nares.sweep.selection import SweepError

STOP_WAIT_S = 3600.0      # after SIGTERM: how long the jobs in flight may take to stop at their epoch's end


class SweepStopped(SweepError):
    """The flow run got SIGTERM: its actors stopped after their current epoch (committed); a new run continues."""


@dataclass(frozen=True)
class Reporter:
    """Where a run reports: `info` / `warning` (format string and arguments, as `logging`) and
    `progress(percent)` (0 to 100)."""

    info: Callable[..., None]
    warning: Callable[..., None]
    progress: Callable[[float], None]


def percent_done(p: dict) -> float:
    """The share of jobs done of `WorkQueue.progress()`, in percent."""
    return 100.0 * p["done"] / max(p["total"], 1)


def progress_line(kind: str, p: dict) -> str:
    """One log line of `WorkQueue.progress()`."""
    eta = "-" if p["eta_s"] is None else f"{p['eta_s'] / 60:.1f} min"
    return (f"{kind} progress: done {p['done']}/{p['total']}, running {p['running']}, failed {p['failed']}, "
            f"device-hours {p['device_hours']:.4f}, ETA {eta}")


def _on_sigterm(stopping: threading.Event, actors: list) -> Callable:
    """A SIGTERM handler: ask every actor to stop after its current epoch (from a thread: no Ray call in a handler)."""

    def handler(signum, frame) -> None:
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=lambda: [a.stop.remote() for a in actors], daemon=True).start()

    return handler


def drive(kind: str, jobs: list[tuple[int, str]], preset: str, seed: int, mode: str,
          submit: Callable, on_done: Callable[[Job, dict], None], report: Reporter) -> WorkQueue:
    """Run `jobs` on a Ray actor pool with progress reports and journal events; returns the settled queue.

    Journal events name the Ray node of each attempt (`node`). SIGTERM stops the actors after their current
    epoch (committed) and ends the run with `SweepStopped` once the jobs in flight have stopped."""
    cfg = load_preset(preset)
    sweep = cfg["sweep"]
    journal = Journal(paths.journal_path(preset, seed))
    queue = WorkQueue(jobs, sweep["max_retries"])
    if not jobs:
        report.info("%s: nothing to do (every selected architecture is complete)", kind)
        report.progress(100.0)
        return queue
    import ray

    from tasks.cluster import connect, shutdown
    from tasks.pool import Dispatcher, plan_for, start_actors, stop_actors

    started = connect()
    actors: list = []
    stopping = threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():  # after connect: Ray's handler would just exit
        previous = signal.signal(signal.SIGTERM, _on_sigterm(stopping, actors))
    dispatcher = None
    try:
        pool = plan_for(cfg, jobs)
        report.info("%s: %d architecture(s) on %s", kind, len(jobs), pool.describe())
        actors.extend(start_actors(pool, preset, mode))
        nodes = {i: info["node"] for i, info in enumerate(ray.get([a.info.remote() for a in actors]))}
        running_on: dict[int, str] = {}

        def on_event(event: str, job: Job, **fields) -> None:
            name = {"submit": "start"}.get(event, event)
            if event == "submit":
                running_on[job.arch_id] = nodes.get(fields["actor"], "?")
            stopped = stopping.is_set() and "TrainingStopped" in str(fields.get("error", ""))
            journal.record("stopped" if stopped else name, arch_id=job.arch_id, arch=job.arch, attempt=job.attempts,
                           seed=seed, node=running_on.get(job.arch_id), **fields)
            if stopped:
                raise SweepStopped(f"{kind} stopped by SIGTERM after the current epoch of each running architecture "
                                   "(committed); run it again to continue")
            if event in ("retry", "failed"):
                report.warning("%s %s (%d): %s", event, job.arch, job.arch_id, fields.get("error"))

        def on_progress(p: dict) -> None:
            report.progress(percent_done(p))
            report.info("%s", progress_line(kind, p))

        def done(job: Job, result: dict) -> None:
            on_done(job, result)
            extra = {k: result[k] for k in ("epochs_run", "resumed_from", "node") if k in result}
            journal.record("done", arch_id=job.arch_id, arch=job.arch, seed=seed, device=result.get("device"),
                           train_seconds=result.get("train_seconds", 0.0), eval_seconds=result.get("eval_seconds", 0.0),
                           **extra)

        queue.started_at = time.monotonic()           # ETA and elapsed time count from the first job handed out
        dispatcher = Dispatcher(queue, actors, submit, done, on_event, on_progress, depth=sweep["queue_depth"],
                                progress_every_s=sweep["progress_every_s"], fits=pool.fits, unfit=pool.unfit_reason)
        dispatcher.run()
    finally:
        if stopping.is_set() and dispatcher is not None and dispatcher.inflight:
            ray.wait(list(dispatcher.inflight), num_returns=len(dispatcher.inflight), timeout=STOP_WAIT_S)
        stop_actors(actors)
        shutdown(started)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return queue


def finish(kind: str, queue: WorkQueue, skipped: int) -> dict:
    """The run's summary; `SweepError` naming every architecture that failed after its retries."""
    summary = {**queue.progress(), "already_complete": skipped,
               "failed_archs": [j.to_dict() for j in queue.failed]}
    if queue.failed:
        ids = ", ".join(f"{j.arch} (id {j.arch_id})" for j in queue.failed)
        raise SweepError(f"{kind}: {len(queue.failed)} architecture(s) failed after retries: {ids}")
    return summary
