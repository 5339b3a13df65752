"""The parameters of the `nares` flow (its deployments, `nares sweep run`, `nares demo`), checked before any work.

`resolve_request` turns (action, preset, space, dataset, suite, archs, seeds, mode, version) into a `FlowRequest`:
the preset that sweeps that space on that data set (`space=nb201` with preset `tiny` → `nb201-tiny`), the suite's
name and its evaluations (`nares.evaluations.suite`; default the preset's `eval.suite`, else `nares`). A bad value
is one `SweepError` line that names the parameter, the value and what is allowed, raised before anything is
read, trained or started. `reevaluate_targets` does the same for re-evaluate with `preset="all"`.

Imports the config, spaces, data-set and evaluation registries; not Prefect, Ray, torch or the store.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from nares.errors import NaresError, shown
from nares.sweep.selection import SweepError

ACTIONS: tuple[str, ...] = ("sweep", "re-evaluate", "publish")
MODES: tuple[str, ...] = ("train", "dry-run")
# The evaluations the published WRN record (cifar10.jsonl, PROTOCOL §4) is built from: a WRN sweep must run them.
WRN_RECORD_EVALUATIONS: tuple[str, ...] = ("clean", "fgsm", "pgd", "cw", "aa", "complexity")


@dataclass(frozen=True)
class FlowRequest:
    """A checked request: the resolved preset, its search space and data set, the suite and its evaluations."""

    action: str
    preset: str
    space: str
    dataset: str
    suite: str
    evaluations: tuple[str, ...]


def _bad(parameter: str, value: Any, why: str) -> SweepError:
    return SweepError(f"parameter {parameter}={shown(value)}: {why}")


def suite_name(cfg: Mapping[str, Any], name: str | None = None) -> str:
    """The suite a run of preset `cfg` evaluates: `name`, else the preset's `eval.suite`, else `nares`."""
    from nares.evaluations import DEFAULT_SUITE

    return name or cfg["eval"].get("suite") or DEFAULT_SUITE


def suite_evaluations(cfg: Mapping[str, Any], name: str | None = None) -> tuple[str, ...]:
    """The evaluations of suite `name` (default `suite_name(cfg)`) under preset `cfg`, checked (an unknown suite,
    evaluation or setting is one `SweepError` line naming the parameter)."""
    from nares.evaluations import suite

    try:
        return tuple(suite(cfg, suite_name(cfg, name)))
    except NaresError as e:
        raise _bad("suite", name if name is not None else suite_name(cfg), f"{e} (preset {cfg['name']!r})") from None


def not_evaluable(cfg: Mapping[str, Any], evaluations: Iterable[str]) -> dict[str, str]:
    """{evaluation: why} of the `evaluations` that cannot run here under preset `cfg`: those the evaluator skips
    because their `unavailable` says so (e.g. the corruption evaluations where CIFAR-10-C is absent)."""
    from nares.evaluations import get_evaluation

    return {name: why for name in evaluations if (why := get_evaluation(name).unavailable(cfg))}


def _check_space_name(space: str | None) -> None:
    from nares.spaces import space_names

    if space is None:
        return
    names = space_names()
    if not isinstance(space, str) or space not in names:
        raise _bad("space", space, f"unknown search space; known: {', '.join(names)}")


def _check_dataset(dataset: str | None, cfg: Mapping[str, Any] | None) -> str:
    """The data set `dataset` names (the preset's when None), which must be registered and be the preset's."""
    from nares.datasets import dataset_for, dataset_names

    names = dataset_names()
    if dataset is not None and (not isinstance(dataset, str) or dataset not in names):
        raise _bad("dataset", dataset, f"unknown data set; registered: {', '.join(names)}")
    if cfg is None:
        return str(dataset)
    own = dataset_for(cfg).name
    if dataset is not None and dataset != own:
        raise _bad("dataset", dataset, f"preset {cfg['name']!r} trains and evaluates on {own!r}; name a preset whose "
                                       f"data set is {dataset!r}")
    return own


def _resolve_preset(preset: str, space: str | None) -> dict[str, Any]:
    from nares.config import load_preset, preset_for_space

    if not isinstance(preset, str) or not preset:
        raise _bad("preset", preset, "expected a preset name of the params file")
    try:
        load_preset(preset)
    except NaresError as e:
        raise _bad("preset", preset, str(e)) from None
    try:
        return load_preset(preset_for_space(preset, space))
    except NaresError as e:
        raise _bad("space", space, str(e)) from None


def _check_seeds(seeds: Iterable[int] | None) -> None:
    if seeds is None:
        return
    if isinstance(seeds, str | bytes) or not isinstance(seeds, Iterable):
        raise _bad("seeds", seeds, "expected a list of non-negative integers, or null")
    bad = [s for s in seeds if isinstance(s, bool) or not isinstance(s, int) or s < 0]
    if bad or not list(seeds):
        raise _bad("seeds", seeds, "expected a non-empty list of non-negative integers, or null")


def resolve_request(action: str, preset: str, *, space: str | None = None, dataset: str | None = None,
                    suite: str | None = None, archs: str = "all", seeds: Iterable[int] | None = None,
                    mode: str = "train", version: str | None = None) -> FlowRequest:
    """Check every parameter of one flow run and resolve its preset and suite (see the module docstring).

    A WRN sweep must evaluate the published record's evaluations (`WRN_RECORD_EVALUATIONS`): another suite on WRN
    runs is added by re-evaluate. `archs` is checked for sweep and publish (the space's selection syntax)."""
    from nares.spaces import space_for
    from nares.sweep.selection import select_archs

    if action not in ACTIONS:
        raise _bad("action", action, f"expected one of {', '.join(ACTIONS)}")
    if mode not in MODES:
        raise _bad("mode", mode, f"expected one of {', '.join(MODES)}")
    _check_seeds(seeds)
    _check_space_name(space)
    _check_dataset(dataset, None)
    cfg = _resolve_preset(preset, space)
    own_dataset = _check_dataset(dataset, cfg)
    evaluations = suite_evaluations(cfg, suite)
    sp = space_for(cfg)
    if action == "sweep" and sp.name == "wrn":
        lacking = [e for e in WRN_RECORD_EVALUATIONS if e not in evaluations]
        if lacking:
            raise _bad("suite", suite_name(cfg, suite),
                       f"a WRN sweep writes the published record, which needs {', '.join(lacking)}; sweep with a "
                       "suite that has them (e.g. nares) and add this one with action re-evaluate")
    if action == "sweep" or (action == "publish" and archs != "all"):  # publish: all = no completeness check
        try:
            select_archs(archs, sp)
        except NaresError as e:
            raise _bad("archs", archs, str(e)) from None
    if action == "publish" and version is not None:
        from nares.release import check_version

        try:
            check_version(version)
        except NaresError as e:
            raise _bad("version", version, str(e)) from None
    return FlowRequest(action, cfg["name"], sp.name, own_dataset, suite_name(cfg, suite), evaluations)


def reevaluate_targets(run_sets: Iterable[tuple[str, int]], *, seeds: Iterable[int] | None = None,
                       space: str | None = None, dataset: str | None = None, suite: str | None = None,
                       mode: str = "train") -> list[tuple[FlowRequest, int]]:
    """re-evaluate with `preset="all"`: the (request, seed) of every (preset, seed) in `run_sets` kept by `seeds`,
    `space` and `dataset` (filters: the presets of that space / data set), each preset's suite checked, all before
    any work (a runs folder of a preset the params file lacks is one line too)."""
    from nares.config import load_preset
    from nares.datasets import dataset_for
    from nares.spaces import space_for

    if mode not in MODES:
        raise _bad("mode", mode, f"expected one of {', '.join(MODES)}")
    _check_seeds(seeds)
    _check_space_name(space)
    _check_dataset(dataset, None)
    wanted = None if seeds is None else set(seeds)
    out = []
    for preset, seed in run_sets:
        if wanted is not None and seed not in wanted:
            continue
        cfg = load_preset(preset)
        sp, ds = space_for(cfg).name, dataset_for(cfg).name
        if (space is not None and sp != space) or (dataset is not None and ds != dataset):
            continue
        out.append((FlowRequest("re-evaluate", preset, sp, ds, suite_name(cfg, suite), suite_evaluations(cfg, suite)),
                    seed))
    return out
