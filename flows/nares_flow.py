"""The `nares` flow. Its deployments (prefect.yaml) each fix `action`:

- `nares/full-sweep`  (action=sweep): train + evaluate + ingest every selected architecture not yet complete;
- `nares/re-evaluate` (action=re-evaluate, cron): compute only the ledger's missing or stale metric cells, of
  every preset and seed this `$NARES_HOME` has runs of (`preset="all"`, the deployment's default) or of one preset;
- `nares/publish`     (action=publish): validate the tables and publish a release.
"""

from __future__ import annotations

import functools
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE

from nares.config import load_preset
from nares.spaces import space_for
from nares.sweep import paths
from nares.sweep.journal import Journal
from nares.sweep.queue import Job, WorkQueue, progress_markdown
from nares.sweep.selection import SweepError, order_jobs, select_archs

Action = Literal["sweep", "re-evaluate", "publish"]


class SweepStopped(SweepError):
    """The flow run got SIGTERM: its actors stopped after their current epoch (committed); a new run continues."""


def _store():
    from nares.store.objects import ObjectStore

    store = ObjectStore.from_settings()
    store.ensure_bucket()
    return store


def _artifact_key(action: str, preset: str, seed: int) -> str:
    return f"nares-{action}-{preset}-seed{seed}".lower().replace("_", "-")


@task(name="plan", cache_policy=NO_CACHE)
def plan(preset: str, archs: str, seed: int, mode: str, tables_root: str) -> tuple[list[tuple[int, str]], int]:
    """The selected architectures not yet complete, in cost order; and how many were already complete."""
    cfg = load_preset(preset)
    space = space_for(cfg)
    selected = select_archs(archs, space)
    if mode == "dry-run":
        done = Journal(paths.journal_path(preset, seed)).done_ids()
    else:
        from nares.store.ingest import complete_ids

        done = complete_ids(tables_root, space.name)
    todo = [(i, a) for i, a in selected if i not in done]
    ordered = order_jobs(todo, cfg["sweep"]["order"], cfg["model"]["width_base"], space=space)
    return [(i, space.format(a)) for i, a in ordered], len(selected) - len(todo)


def _on_sigterm(stopping: threading.Event, actors: list) -> Callable:
    """A SIGTERM handler: ask every actor to stop after its current epoch (from a thread: no Ray call in a handler)."""

    def handler(signum, frame) -> None:
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=lambda: [a.stop.remote() for a in actors], daemon=True).start()

    return handler


def _drive(kind: str, jobs: list[tuple[int, str]], preset: str, seed: int, mode: str, submit, on_done) -> WorkQueue:
    """Run `jobs` on a Ray actor pool with progress artifacts and journal events; returns the settled queue.

    Journal events name the Ray node of each attempt (`node`). SIGTERM stops the actors after their current
    epoch (committed) and ends the run with `SweepStopped` once the jobs in flight have stopped."""
    from tasks.cluster import connect, shutdown
    from tasks.pool import Dispatcher, plan_for, start_actors, stop_actors

    logger = get_run_logger()
    cfg = load_preset(preset)
    sweep = cfg["sweep"]
    journal = Journal(paths.journal_path(preset, seed))
    queue = WorkQueue(jobs, sweep["max_retries"])
    key = _artifact_key(kind, preset, seed)
    progress_id = create_progress_artifact(0.0, key=key, description=f"{kind} {preset} seed {seed}: % of architectures done")
    if not jobs:
        logger.info("%s: nothing to do (every selected architecture is complete)", kind)
        update_progress_artifact(progress_id, 100.0)
        return queue
    started = connect()
    actors: list = []
    stopping = threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():  # after connect: Ray's handler would just exit
        previous = signal.signal(signal.SIGTERM, _on_sigterm(stopping, actors))
    dispatcher = None
    try:
        pool = plan_for(cfg, jobs)
        logger.info("%s: %d architecture(s) on %s", kind, len(jobs), pool.describe())
        actors.extend(start_actors(pool, preset, mode))
        import ray

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
                logger.warning("%s %s (%d): %s", event, job.arch, job.arch_id, fields.get("error"))

        def on_progress(p: dict) -> None:
            update_progress_artifact(progress_id, 100.0 * p["done"] / max(p["total"], 1))
            eta = "-" if p["eta_s"] is None else f"{p['eta_s'] / 60:.1f} min"
            logger.info("%s progress: done %d/%d, running %d, failed %d, device-hours %.4f, ETA %s",
                        kind, p["done"], p["total"], p["running"], p["failed"], p["device_hours"], eta)

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
            import ray

            ray.wait(list(dispatcher.inflight), num_returns=len(dispatcher.inflight), timeout=3600)  # their epochs
        stop_actors(actors)
        shutdown(started)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    create_markdown_artifact(progress_markdown(f"{kind}: preset {preset}, seed {seed}", queue.progress(), queue.failed),
                             key=f"{key}-summary", description=f"{kind} summary")
    return queue


def _finish(kind: str, queue: WorkQueue, skipped: int) -> dict:
    summary = {**queue.progress(), "already_complete": skipped,
               "failed_archs": [j.to_dict() for j in queue.failed]}
    if queue.failed:
        ids = ", ".join(f"{j.arch} (id {j.arch_id})" for j in queue.failed)
        raise SweepError(f"{kind}: {len(queue.failed)} architecture(s) failed after retries: {ids}")
    return summary


@task(name="sweep", cache_policy=NO_CACHE)
def run_sweep(jobs: list[tuple[int, str]], skipped: int, preset: str, seed: int, mode: str, tables_root: str) -> dict:
    store = _store() if mode == "train" else None
    space_name = space_for(load_preset(preset)).name

    def submit(actor, job: Job):
        return actor.run.remote(job.arch, str(paths.run_dir(preset, seed, job.arch)))

    def on_done(job: Job, result: dict) -> None:
        if store is None:
            return
        from nares.store.ingest import ingest_run, is_complete
        from nares.train.store_state import RunSync

        run = paths.run_dir(preset, seed, job.arch)
        RunSync.for_dir(store, run).restore(run)  # the worker's files, verified, when it ran on another node
        ingest_run(store, Path(tables_root), run, arch_id=job.arch_id)
        if not is_complete(tables_root, job.arch_id, space_name):
            raise SweepError(f"{job.arch} was ingested but the store does not hold it complete")

    return _finish("sweep", _drive("sweep", jobs, preset, seed, mode, submit, on_done), skipped)


@task(name="find-stale-cells", cache_policy=NO_CACHE)
def find_stale(preset: str, tables_root: str) -> dict[tuple[int, str], list[str]]:
    from nares.store.tables import read_tables
    from nares.sweep.stale import group_by_run, stale_cells

    cfg = load_preset(preset)
    if not Path(tables_root).is_dir():
        get_run_logger().info("re-evaluate: no tables at %s yet", tables_root)
        return {}
    versions = dict(cfg["eval"]["metric_versions"])
    from nares.data import corruptions_available

    if not corruptions_available():
        versions.pop("corruptions", None)     # cannot be computed here; not scheduled night after night
    t = read_tables(tables_root, ["manifest", "ledger"])
    arch_ids = set(t["manifest"].column("arch_id").to_pylist())
    from nares.train.runtime import training_hash

    cells = stale_cells(t["ledger"], arch_ids, versions, cfg["sweep"]["reevaluate_checkpoints"],
                        training_hash=training_hash(cfg))   # runs of another training preset: refused
    get_run_logger().info("re-evaluate: %d stale or missing cell(s) over %d architecture(s)", len(cells),
                          len({c.arch_id for c in cells}))
    return group_by_run(cells)


def _checkpoint_objects(tables_root: str) -> dict[tuple[int, str], tuple[str, str]]:
    """(arch_id, kind) → (key, sha256) of every manifest row (the first row where one repeats)."""
    from nares.store.tables import read_tables

    m = read_tables(tables_root, ["manifest"])["manifest"]
    out: dict[tuple[int, str], tuple[str, str]] = {}
    for aid, kind, key, sha in zip(*(m.column(c).to_pylist() for c in ("arch_id", "kind", "key", "sha256")),
                                   strict=True):
        out.setdefault((aid, kind), (key, sha))
    return out


def _ensure_checkpoint(store, objects: Callable[[], dict], arch_id: int, kind: str, run: Path) -> None:
    """Fetch a checkpoint from the object store into the run folder when it is not there (another machine);
    `objects()` is the manifest lookup (`_checkpoint_objects`)."""
    dest = run / "checkpoints" / f"{kind}.pt"
    if dest.exists():
        return
    found = objects().get((arch_id, kind))
    if found is None:
        raise SweepError(f"no `{kind}` checkpoint of arch id {arch_id} in the manifest")
    store.get_file(found[0], dest, found[1])


@task(name="re-evaluate", cache_policy=NO_CACHE)
def run_reevaluate(groups: dict[tuple[int, str], list[str]], preset: str, seed: int, mode: str, tables_root: str) -> dict:
    space = space_for(load_preset(preset))
    index = space.index()
    store = _store() if mode == "train" else None
    cells: dict[int, list[tuple[str, list[str]]]] = {}
    for (arch_id, checkpoint), metrics in sorted(groups.items()):
        cells.setdefault(arch_id, []).append((checkpoint, metrics))
    jobs = [(a, space.format(index.arch_of(a))) for a in sorted(cells)]
    objects = functools.cache(functools.partial(_checkpoint_objects, tables_root))  # read once, when first needed

    def submit(actor, job: Job):
        run = paths.run_dir(preset, seed, job.arch)
        if store is not None:
            for checkpoint, _ in cells[job.arch_id]:
                _ensure_checkpoint(store, objects, job.arch_id, checkpoint, run)
        return actor.evaluate.remote(str(run), cells[job.arch_id])

    def on_done(job: Job, result: dict) -> None:
        if store is not None:
            from nares.store.ingest import ingest_run
            from nares.train.store_state import RunSync

            run = paths.run_dir(preset, seed, job.arch)
            RunSync.for_dir(store, run).restore(run)
            ingest_run(store, Path(tables_root), run, arch_id=job.arch_id)

    return _finish("re-evaluate", _drive("re-evaluate", jobs, preset, seed, mode, submit, on_done), 0)


@task(name="publish-release", cache_policy=NO_CACHE)
def publish_release(version: str, preset: str, tables_root: str, expected: list[int] | None) -> dict:
    from nares.release import publish

    info = publish(version, tables_root=Path(tables_root), store=_store(), expected_archs=expected, preset=preset)
    get_run_logger().info("published release %s (%s architectures) at %s", version, info.get("n_archs"),
                          info.get("store"))
    return info


def _reevaluate_all(seeds: list[int] | None, mode: str, tables_root: str | None) -> dict:
    if tables_root:
        raise SweepError(f"re-evaluate with preset={paths.ALL_PRESETS!r} uses each preset's own tables; "
                         "tables_root needs one preset")
    targets = [(p, s) for p, s in paths.run_sets() if seeds is None or s in seeds]
    get_run_logger().info("re-evaluate: %s", ", ".join(f"{p} seed {s}" for p, s in targets) or
                          f"no runs under {paths.nares_home() / 'runs'}")
    results: dict[str, dict] = {}
    for p, s in targets:
        load_preset(p)                       # a runs folder of a preset the params file lacks: one clear line
        root = str(paths.default_tables_root(p, s))
        results[f"{p}-seed{s}"] = run_reevaluate(find_stale(p, root), p, s, mode, root)
    return results


@flow(name="nares", log_prints=True)
def nares(action: Action = "sweep", preset: str = "tiny", archs: str = "all", seeds: list[int] | None = None,
          mode: Literal["train", "dry-run"] = "train", version: str | None = None,
          tables_root: str | None = None) -> dict:
    """The factory's flow. `archs` selects architectures (all | ids:A-B | list:ARCH,... | sample:N[@SEED]);
    `seeds` runs the sweep once per training seed (default: the preset's seed); `version` names a release.
    `re-evaluate` with `preset="all"` covers every preset and seed with runs under `$NARES_HOME` (`seeds`, when
    given, keeps only those), each in its default tables; its results are keyed `<preset>-seed<seed>`."""
    if action == "re-evaluate" and preset == paths.ALL_PRESETS:
        return _reevaluate_all(seeds, mode, tables_root)
    cfg = load_preset(preset)
    seeds = list(seeds) if seeds else [int(cfg["train"]["seed"])]
    results: dict[str, dict] = {}
    for seed in seeds:
        root = str(Path(tables_root) if tables_root else paths.default_tables_root(preset, seed))
        if action == "sweep":
            jobs, skipped = plan(preset, archs, seed, mode, root)
            results[f"seed{seed}"] = run_sweep(jobs, skipped, preset, seed, mode, root)
        elif action == "re-evaluate":
            results[f"seed{seed}"] = run_reevaluate(find_stale(preset, root), preset, seed, mode, root)
        elif action == "publish":
            ver = version or f"{preset}-seed{seed}-{time.strftime('%Y%m%d-%H%M%S')}"
            expected = None if archs == "all" else [i for i, _ in select_archs(archs, space_for(cfg))]
            results[f"seed{seed}"] = publish_release(ver, preset, root, expected)
        else:
            raise SweepError(f"unknown action {action!r} (expected sweep, re-evaluate or publish)")
    return results
