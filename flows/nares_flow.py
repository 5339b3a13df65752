"""The `nares` flow. Its deployments (prefect.yaml) each fix `action`:

- `nares/full-sweep`  (action=sweep): train + evaluate + ingest every selected architecture not yet complete;
- `nares/re-evaluate` (action=re-evaluate, cron): compute only the ledger's missing or stale metric cells, of
  every preset and seed this `$NARES_HOME` has runs of (`preset="all"`, the deployment's default) or of one preset;
- `nares/publish`     (action=publish): validate the tables and publish a release.

`space`, `dataset` and `suite` pick the preset of that search space and data set and the evaluation suite; every
parameter is checked (`nares.sweep.request`) before any work.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Literal

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE

from nares.config import load_preset
from nares.spaces import space_for
from nares.sweep import paths
from nares.sweep.journal import Journal
from nares.sweep.queue import progress_markdown
from nares.sweep.request import reevaluate_targets, resolve_request
from nares.sweep.selection import SweepError, order_jobs, select_archs
from tasks.drive import Reporter, drive, finish
from tasks.jobs import Calls, reevaluate_calls, sweep_calls

Action = Literal["sweep", "re-evaluate", "publish"]


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


def _run(kind: str, jobs: list[tuple[int, str]], skipped: int, preset: str, seed: int, mode: str,
         calls: Calls) -> dict:
    """`tasks.drive.drive` with this flow run's logger, progress artifact and summary artifact."""
    logger = get_run_logger()
    key = _artifact_key(kind, preset, seed)
    progress_id = create_progress_artifact(0.0, key=key, description=f"{kind} {preset} seed {seed}: % of architectures done")
    report = Reporter(logger.info, logger.warning, lambda percent: update_progress_artifact(progress_id, percent))
    queue = drive(kind, jobs, preset, seed, mode, *calls, report)
    if jobs:
        create_markdown_artifact(progress_markdown(f"{kind}: preset {preset}, seed {seed}", queue.progress(),
                                                   queue.failed), key=f"{key}-summary", description=f"{kind} summary")
    return finish(kind, queue, skipped)


@task(name="sweep", cache_policy=NO_CACHE)
def run_sweep(jobs: list[tuple[int, str]], skipped: int, preset: str, seed: int, mode: str, tables_root: str,
              evaluations: list[str]) -> dict:
    store = _store() if mode == "train" else None
    space = space_for(load_preset(preset)).name
    return _run("sweep", jobs, skipped, preset, seed, mode,
                sweep_calls(preset, seed, tables_root, store, space, evaluations))


@task(name="find-stale-cells", cache_policy=NO_CACHE)
def find_stale(preset: str, tables_root: str, suite: str | None) -> dict[tuple[int, str], list[str]]:
    """The missing or stale cells of `suite`, or without one of the evaluations the ledger holds."""
    from nares.sweep.stale import stale_groups

    groups, line = stale_groups(load_preset(preset), tables_root, suite)
    get_run_logger().info("re-evaluate %s (%s): %s", preset, f"suite {suite}" if suite else "the ledger's evaluations",
                          line)
    return groups


@task(name="re-evaluate", cache_policy=NO_CACHE)
def run_reevaluate(groups: dict[tuple[int, str], list[str]], preset: str, seed: int, mode: str, tables_root: str) -> dict:
    from nares.sweep.stale import reevaluate_jobs

    jobs, cells = reevaluate_jobs(load_preset(preset), groups, tables_root)
    store = _store() if mode == "train" else None
    return _run("re-evaluate", jobs, 0, preset, seed, mode, reevaluate_calls(preset, seed, tables_root, store, cells))


@task(name="publish-release", cache_policy=NO_CACHE)
def publish_release(version: str, preset: str, tables_root: str, expected: list[int] | None, suite: str) -> dict:
    from nares.release import publish

    info = publish(version, tables_root=Path(tables_root), store=_store(), expected_archs=expected, preset=preset,
                   suite=suite)
    get_run_logger().info("published release %s (%s architectures, suite %s) at %s", version, info.get("n_archs"),
                          suite, info.get("store"))
    return info


def _reevaluate_all(seeds: list[int] | None, mode: str, tables_root: str | None, space: str | None,
                    dataset: str | None, suite: str | None) -> dict:
    if tables_root:
        raise SweepError(f"re-evaluate with preset={paths.ALL_PRESETS!r} uses each preset's own tables; "
                         "tables_root needs one preset")
    targets = reevaluate_targets(paths.run_sets(), seeds=seeds, space=space, dataset=dataset, suite=suite, mode=mode)
    get_run_logger().info("re-evaluate: %s", ", ".join(f"{r.preset} seed {s}" for r, s in targets) or
                          f"no runs under {paths.nares_home() / 'runs'}")
    results: dict[str, dict] = {}
    for req, s in targets:
        root = str(paths.default_tables_root(req.preset, s))
        results[f"{req.preset}-seed{s}"] = run_reevaluate(find_stale(req.preset, root, suite), req.preset, s, mode, root)
    return results


@flow(name="nares", log_prints=True)
def nares(action: Action = "sweep", preset: str = "tiny", archs: str = "all", seeds: list[int] | None = None,
          mode: Literal["train", "dry-run"] = "train", version: str | None = None,
          tables_root: str | None = None, space: str | None = None, dataset: str | None = None,
          suite: str | None = None) -> dict:
    """The factory's flow. `archs` selects architectures (all | ids:A-B | list:ARCH,... | sample:N[@SEED]);
    `seeds` runs the sweep once per training seed (default: the preset's seed); `version` names a release.
    `re-evaluate` with `preset="all"` covers every preset and seed with runs under `$NARES_HOME` (`seeds`, `space`
    and `dataset`, when given, keep only those), each in its default tables; its results are keyed
    `<preset>-seed<seed>`. `space` picks the preset of that search space (`space=nb201` with preset `tiny` runs
    `nb201-tiny`), `dataset` checks it is the preset's data set, `suite` names the evaluations (default: the
    preset's `eval.suite`, else `nares`): a sweep evaluates exactly them, re-evaluate computes their missing or
    stale cells (without a suite: those of the evaluations the ledger holds), publish requires them. Every
    parameter is checked before any work (one line naming it)."""
    if action == "re-evaluate" and preset == paths.ALL_PRESETS:
        return _reevaluate_all(seeds, mode, tables_root, space, dataset, suite)
    req = resolve_request(action, preset, space=space, dataset=dataset, suite=suite, archs=archs, seeds=seeds,
                          mode=mode, version=version)
    cfg = load_preset(req.preset)
    seeds = list(seeds) if seeds else [int(cfg["train"]["seed"])]
    results: dict[str, dict] = {}
    for seed in seeds:
        root = str(Path(tables_root) if tables_root else paths.default_tables_root(req.preset, seed))
        if action == "sweep":
            jobs, skipped = plan(req.preset, archs, seed, mode, root)
            results[f"seed{seed}"] = run_sweep(jobs, skipped, req.preset, seed, mode, root, list(req.evaluations))
        elif action == "re-evaluate":
            results[f"seed{seed}"] = run_reevaluate(find_stale(req.preset, root, suite), req.preset, seed, mode, root)
        else:
            ver = version or f"{req.preset}-seed{seed}-{time.strftime('%Y%m%d-%H%M%S')}"
            expected = None if archs == "all" else [i for i, _ in select_archs(archs, space_for(cfg))]
            results[f"seed{seed}"] = publish_release(ver, req.preset, root, expected, req.suite)
    return results
