"""The actor pool and the bounded dispatch loop.

Resources come from what the cluster has: one actor per `sweep.gpus_per_actor` GPUs when there are GPUs
(fractions pack several actors on a GPU), else one actor per `sweep.cpus_per_actor` CPUs. Each actor holds
at most `sweep.queue_depth` jobs at a time, so at most actors × depth architectures are ever submitted to
Ray; the rest wait in the `WorkQueue` in cost order.

Packing (`sweep.packing.enabled`, GPU clusters): instead of equal `gpus_per_actor` shares, each GPU is split into
equal shares sized from the predicted peak memory of the architectures (`nares.sweep.packing`), and an
architecture goes only to an actor whose share holds it; one larger than a whole GPU is reported failed at once.

Faults: a job that raises is retried (bounded by `sweep.max_retries`, then reported as failed). When an
actor dies (killed process, lost node) Ray restarts it; the job it was running counts one failed attempt
(the trainer resumes it from its last completed epoch), the jobs queued behind it are given back uncounted,
and the actor gets no new job until a health probe reaches its restarted process.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import ray
from ray.exceptions import ActorDiedError, RayActorError, RayTaskError

from nares.config import params_path
from nares.spaces import space_for
from nares.sweep.packing import GIB, PackingPlan, pack_jobs
from nares.sweep.queue import Job, WorkQueue
from nares.sweep.selection import SweepError
from tasks.actors import ArchWorker

FORWARD_ENV_PREFIXES = ("NARES_", "AWS_", "PREFECT_", "DVC_", "TORCH_")
ACTOR_RESTARTS = 4


@dataclass
class PoolPlan:
    n_actors: int
    options: dict           # Ray resource options of each actor (of the first actor when packed)
    threads: int            # torch threads per actor
    kind: str               # "gpu" | "cpu"
    packing: PackingPlan | None = None
    peaks: dict[str, float] = field(default_factory=dict)   # arch -> predicted peak bytes (packed pools)

    def options_of(self, actor: int) -> dict:
        if self.packing is None:
            return self.options
        return {**self.options, "num_gpus": self.packing.shares[actor]}

    def fits(self, actor: int, job: Job) -> bool:
        """May `actor` take `job`? Always, unless packed: then its share must hold the job's predicted peak."""
        return self.packing is None or self.packing.fits(actor, self.peaks.get(job.arch))

    def unfit_reason(self, job: Job) -> str:
        peak = self.peaks.get(job.arch, 0.0)
        gib = self.packing.gpu_bytes / GIB if self.packing else 0.0
        return (f"predicted peak memory {peak / GIB:.1f} GiB exceeds every actor's GPU share "
                f"(one GPU: {gib:.1f} GiB × headroom {self.packing.headroom if self.packing else 1:g})")

    def describe(self) -> str:
        if self.packing is not None:
            counts = {s: self.packing.shares.count(s) for s in sorted(set(self.packing.shares), reverse=True)}
            text = ", ".join(f"{n} × {s:g} GPU" for s, n in counts.items())
            return f"{self.n_actors} packed gpu actor(s) ({text}), {self.threads} thread(s) each"
        return f"{self.n_actors} {self.kind} actor(s), {self.options}, {self.threads} thread(s) each"


def plan_pool(sweep_cfg: dict, n_jobs: int, resources: dict | None = None) -> PoolPlan:
    """How many actors with which resources, from the cluster's total resources."""
    res = resources if resources is not None else ray.cluster_resources()
    gpus, cpus = float(res.get("GPU", 0)), float(res.get("CPU", 1))
    cap = sweep_cfg.get("max_actors") or 10**9
    if gpus > 0:
        frac = float(sweep_cfg["gpus_per_actor"])
        if not 0 < frac <= max(gpus, 1):
            raise SweepError(f"sweep.gpus_per_actor={frac} does not fit the cluster's {gpus:g} GPU(s)")
        n = max(1, min(int(gpus / frac + 1e-9), cap, n_jobs))
        threads = max(1, int(cpus // n))
        return PoolPlan(n, {"num_gpus": frac, "num_cpus": min(1, cpus / n)}, threads, "gpu")
    per = float(sweep_cfg["cpus_per_actor"])
    n = max(1, min(int(cpus // per) or 1, cap, n_jobs))
    return PoolPlan(n, {"num_cpus": min(per, cpus)}, max(1, int(per)), "cpu")


def plan_for(cfg: dict, jobs: list[tuple[int, str]], resources: dict | None = None) -> PoolPlan:
    """`plan_pool` for a preset, packed by predicted peak memory when `sweep.packing.enabled` and there are GPUs."""
    sweep, pk = cfg["sweep"], cfg["sweep"]["packing"]
    res = resources if resources is not None else ray.cluster_resources()
    plan = plan_pool(sweep, len(jobs), res)
    if not pk["enabled"] or plan.kind != "gpu":
        return plan
    space = space_for(cfg)
    if space.name != "wrn":
        raise SweepError(f"sweep.packing.enabled: the memory model is the wrn space's; set it false for space "
                         f"{space.name!r} (gpus_per_actor packs evenly)")
    packing, peaks = pack_jobs(cfg, [a for _, a in jobs], int(float(res.get("GPU", 0)) + 1e-9))
    cpus = float(res.get("CPU", 1))
    n = len(packing.shares)
    return PoolPlan(n, {"num_gpus": packing.shares[0], "num_cpus": min(1, cpus / n)}, max(1, int(cpus // n)), "gpu",
                    packing, peaks)


def forwarded_env() -> dict[str, str]:
    """The factory's settings the actors need (state folder, data, store credentials), and the params file
    this process reads (NARES_PARAMS, set even when it is the default)."""
    env = {k: v for k, v in os.environ.items() if k.startswith(FORWARD_ENV_PREFIXES)}
    return {**env, "NARES_PARAMS": str(params_path())}


def start_actors(plan: PoolPlan, preset: str, mode: str) -> list:
    env = forwarded_env()
    return [
        ArchWorker.options(**plan.options_of(i), max_restarts=ACTOR_RESTARTS, max_task_retries=0)
        .remote(preset, mode, env, plan.threads)
        for i in range(plan.n_actors)
    ]


def stop_actors(actors: list) -> None:
    """Release the pool's resources at once (a driver on a shared cluster may run several sweeps)."""
    for actor in actors:
        ray.kill(actor, no_restart=True)


def _short(e: BaseException) -> str:
    cause = getattr(e, "cause", None) or e
    text = f"{type(cause).__name__}: {cause}".strip().splitlines()
    return (text[0] if text else type(cause).__name__)[:300]


@dataclass
class Dispatcher:
    """Feeds `actors` from `queue`, `depth` jobs per actor at most, until the queue is finished.

    An actor whose process is lost is paused: nothing is submitted to it until a health probe (`info`)
    answers from its restarted process; an actor Ray declares dead for good leaves the pool.
    """

    queue: WorkQueue
    actors: list
    submit: Callable[[object, Job], ray.ObjectRef]
    on_done: Callable[[Job, dict], None]                 # may raise: the job then counts as failed
    on_event: Callable[..., None] = lambda *a, **k: None
    on_progress: Callable[[dict], None] = lambda p: None
    depth: int = 1
    fits: Callable[[int, Job], bool] = lambda actor, job: True    # may this actor take this job (packing)
    unfit: Callable[[Job], str] = lambda job: "no actor of the pool can take it"
    progress_every_s: float = 10.0
    inflight: dict = field(default_factory=dict)         # ref -> (actor index, job)
    order: dict = field(default_factory=dict)            # actor index -> jobs in submission order
    probes: dict = field(default_factory=dict)           # actor index -> pending health-probe ref (or None)
    dead: set = field(default_factory=set)

    def _failed(self, job: Job, error: str) -> None:
        """Count a failed attempt of `job`: it is retried, or reported failed once out of retries."""
        retried = self.queue.fail(job, error)
        self.on_event("retry" if retried else "failed", job, error=error)

    def _settled(self, ref) -> Job:
        """Take the job of a finished `ref` off its actor's books."""
        i, job = self.inflight.pop(ref)
        self.order[i].remove(job)
        return job

    def _fill(self) -> None:
        """Hand out jobs one at a time to the live actor with the fewest in flight (largest jobs spread first)."""
        live = [i for i in range(len(self.actors)) if i not in self.probes and i not in self.dead]
        while live:
            i = min(live, key=lambda a: (len(self.order.setdefault(a, [])), a))
            if len(self.order[i]) >= self.depth:
                return
            job = self.queue.take(lambda j, a=i: self.fits(a, j))
            if job is None:
                live.remove(i)                    # nothing pending fits this actor; others may still take some
                continue
            self.inflight[self.submit(self.actors[i], job)] = (i, job)
            self.order[i].append(job)
            self.on_event("submit", job, actor=i)

    def _actor_lost(self, i: int, e: RayActorError) -> None:
        """Settle every job of a lost actor: the oldest was running (one attempt, unless it never reached
        the actor), the rest never started. Then probe the actor, or drop it if Ray gave up on it."""
        error = _short(e)
        jobs = self.order.pop(i, [])
        for ref in [r for r, (a, _) in self.inflight.items() if a == i]:
            del self.inflight[ref]
        for n, job in enumerate(jobs):
            if n == 0 and "restarting" not in error:
                self._failed(job, f"worker lost: {error}")
            else:
                self.queue.interrupt(job)
                self.on_event("interrupted", job)
        if isinstance(e, ActorDiedError):
            self.dead.add(i)
            self.probes.pop(i, None)
        else:
            self.probes[i] = None

    def _probe(self) -> list:
        for i, ref in list(self.probes.items()):
            if ref is None:
                self.probes[i] = self.actors[i].info.remote()
        return [r for r in self.probes.values() if r is not None]

    def _settle_probe(self, ref) -> None:
        i = next(a for a, r in self.probes.items() if r is ref)
        try:
            ray.get(ref)
            del self.probes[i]                            # healthy again
        except ActorDiedError:
            del self.probes[i]
            self.dead.add(i)
        except RayActorError:
            time.sleep(0.5)
            self.probes[i] = None                         # still restarting: probe again

    def _reject_unfit(self) -> None:
        """Report at once, without an attempt, every job that no actor of the pool could ever take."""
        for job in [j for j in self.queue.pending if not any(self.fits(i, j) for i in range(len(self.actors)))]:
            self.queue.reject(job, self.unfit(job))
            self.on_event("failed", job, error=self.unfit(job))

    def run(self) -> WorkQueue:
        last = 0.0
        self._reject_unfit()
        while True:
            if len(self.dead) == len(self.actors):
                raise SweepError(f"every worker died; {len(self.queue.pending)} architecture(s) were not run")
            self._fill()
            probes = self._probe()
            if not self.inflight and self.queue.finished:  # an actor still restarting has nothing left to do
                break
            ready, _ = ray.wait(list(self.inflight) + probes, num_returns=1, timeout=1.0)
            for ref in ready:
                if ref in probes:
                    self._settle_probe(ref)
                    continue
                if ref not in self.inflight:          # settled with its lost actor
                    continue
                try:
                    result = ray.get(ref)
                except RayActorError as e:
                    self._actor_lost(self.inflight[ref][0], e)
                    continue
                except RayTaskError as e:
                    self._failed(self._settled(ref), _short(e))
                    continue
                job = self._settled(ref)
                try:
                    self.on_done(job, result)
                except Exception as e:  # any failure to ingest is a failed attempt, retried then reported
                    self._failed(job, _short(e))
                    continue
                self.queue.finish(job, result.get("train_seconds", 0.0) + result.get("eval_seconds", 0.0))
            now = time.monotonic()
            if now - last >= self.progress_every_s:
                last = now
                self.on_progress(self.queue.progress())
        self.on_progress(self.queue.progress())
        return self.queue
