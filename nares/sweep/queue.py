"""The sweep's work queue: jobs in cost order, bounded retries, and the progress figures derived from it.

The queue never hands out more than the caller asks for, so a sweep over 15,625 architectures keeps only
`actors × queue_depth` of them in flight; the rest wait here as plain data.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from nares.spaces.wrn import Arch


@dataclass
class Job:
    arch_id: int
    arch: str
    attempts: int = 0                     # failed attempts so far
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"arch_id": self.arch_id, "arch": self.arch, "attempts": self.attempts, "errors": list(self.errors)}


class WorkQueue:
    """Pending jobs in the given order; `fail` requeues a job at the front until it has failed
    `max_retries + 1` times, after which it is kept in `failed` (reported, never dropped)."""

    def __init__(self, pairs: Iterable[tuple[int, Arch | str]], max_retries: int):
        self.pending: deque[Job] = deque(Job(i, str(a)) for i, a in pairs)
        self.max_retries = max_retries
        self.total = len(self.pending)
        self.running: dict[int, Job] = {}
        self.done: list[int] = []
        self.failed: list[Job] = []
        self.seconds_done: list[float] = []       # device seconds of each finished job
        self.started_at = time.monotonic()

    def take(self, accept: Callable[[Job], bool] | None = None) -> Job | None:
        """The first pending job (the first `accept`ed one when given), now running; None if there is none."""
        if accept is None:
            job = self.pending.popleft() if self.pending else None
        else:
            job = next((j for j in self.pending if accept(j)), None)
            if job is not None:
                self.pending.remove(job)
        if job is not None:
            self.running[job.arch_id] = job
        return job

    def finish(self, job: Job, device_seconds: float = 0.0) -> None:
        self.running.pop(job.arch_id, None)
        self.done.append(job.arch_id)
        self.seconds_done.append(device_seconds)

    def fail(self, job: Job, error: str) -> bool:
        """Count a failed attempt; True if the job was requeued, False if it is now reported as failed."""
        self.running.pop(job.arch_id, None)
        job.attempts += 1
        job.errors.append(error)
        if job.attempts > self.max_retries:
            self.failed.append(job)
            return False
        self.pending.appendleft(job)
        return True

    def reject(self, job: Job, error: str) -> None:
        """Report a pending job failed without running it (it can run nowhere in this pool)."""
        self.pending.remove(job)
        job.errors.append(error)
        self.failed.append(job)

    def interrupt(self, job: Job) -> None:
        """Give back a job that never started (its worker went away first): no attempt is counted."""
        self.running.pop(job.arch_id, None)
        self.pending.appendleft(job)

    @property
    def finished(self) -> bool:
        return not self.pending and not self.running

    def progress(self) -> dict:
        """done / running / failed / pending counts, device hours so far and the ETA in seconds (None until
        the first job finishes)."""
        elapsed = time.monotonic() - self.started_at
        n_done = len(self.done)
        remaining = len(self.pending) + len(self.running)
        eta = elapsed / n_done * remaining if n_done else None
        return {
            "total": self.total, "done": n_done, "running": len(self.running), "failed": len(self.failed),
            "pending": len(self.pending), "elapsed_s": round(elapsed, 3),
            "eta_s": None if eta is None else round(eta, 1),
            "device_hours": round(sum(self.seconds_done) / 3600, 6),
        }


def progress_markdown(title: str, progress: dict, failed: Iterable[Job] = ()) -> str:
    """A small markdown report of `WorkQueue.progress()` (and the failed jobs with their last error)."""
    eta = "—" if progress["eta_s"] is None else f"{progress['eta_s'] / 3600:.2f} h"
    lines = [
        f"## {title}", "",
        "| total | done | running | failed | pending | device-hours | elapsed | ETA |",
        "|---|---|---|---|---|---|---|---|",
        f"| {progress['total']} | {progress['done']} | {progress['running']} | {progress['failed']} | "
        f"{progress['pending']} | {progress['device_hours']:.4f} | {progress['elapsed_s'] / 60:.1f} min | {eta} |",
    ]
    failed = list(failed)
    if failed:
        lines += ["", "### Failed architectures", "", "| arch_id | arch | attempts | last error |", "|---|---|---|---|"]
        lines += [f"| {j.arch_id} | {j.arch} | {j.attempts} | {j.errors[-1][:200] if j.errors else ''} |" for j in failed]
    return "\n".join(lines)
