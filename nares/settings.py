"""Typed presets: the schema of params.yaml, checked whenever a preset is loaded.

Each section of a preset is a frozen dataclass below: a field's annotation is its type, its `rule(...)` the
allowed range. `parse_settings(raw, where)` checks a resolved preset (the plain dict `nares.config.load_preset`
returns) key by key in file order, then the rules that tie keys together (lr milestones and save epochs below
`train.epochs`, ...), and returns the typed `Settings`. The first bad value raises one `ConfigError` line naming
its dotted key (`presets.tiny.train.epochs`), the value and what is allowed. Nothing is coerced: the dict keeps
the file's values (so preset hashes do not move); the typed object holds floats as floats and lists as tuples.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import types
from collections.abc import Mapping
from functools import cache
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from nares.errors import ConfigError, shown

Precision = Literal["fp32", "bf16", "fp16"]
TrainInit = Literal["gaussian", "uniform"]
EvalInit = Literal["uniform"]  # the validation/eval sections have no init_scale_255, which `gaussian` needs
TrainSource = Literal["cifar10", "cifar10-subset"]
ValSource = Literal["cifar10.1", "holdout"]
CorruptionSource = Literal["cifar10-c"]
BestMetric = Literal["val_cw_acc"]
SweepOrder = Literal["largest_first", "smallest_first", "id"]
CheckpointKind = Literal["e74", "e89", "last", "best"]
SearchObjective = Literal["MACS", "PARAMS", "BEST_EPOCH", "TRAIN_ACC", "TRAIN_LOSS", "VAL_LOSS", "VAL_CLEAN_ACC",
                          "VAL_PGD_ACC", "VAL_CW_ACC"]  # every non-test Metric: a search must not read the test set


def rule(*, ge: float | None = None, gt: float | None = None, le: float | None = None, lt: float | None = None,
         length: int | None = None, nonempty: bool = False, increasing: bool = False) -> Any:
    """A field's allowed range (bounds apply to a list's items); `increasing`: a strictly increasing list."""
    return dataclasses.field(metadata={"ge": ge, "gt": gt, "le": le, "lt": lt, "length": length,
                                       "nonempty": nonempty, "increasing": increasing})


_LIST_KEYS = {"length": None, "nonempty": False, "increasing": False}


@dataclasses.dataclass(frozen=True)
class Space:
    """The preset's search space: `name` (`wrn` when the section does not name one, so presets without it keep
    their hashes) and that space's own settings (WRN: depths, widths), checked by the space itself
    (`nares.spaces.configured_space`)."""

    name: str
    settings: tuple[tuple[str, Any], ...]


@dataclasses.dataclass(frozen=True)
class Model:
    width_base: int = rule(ge=1)
    num_classes: int = rule(ge=2)


@dataclasses.dataclass(frozen=True)
class Data:
    train: TrainSource
    train_limit: int | None = rule(ge=1)
    val: ValSource
    val_limit: int | None = rule(ge=1)
    val_holdout: int = rule(ge=0)
    test: TrainSource
    test_limit: int | None = rule(ge=1)
    corruptions: CorruptionSource
    corruption_limit: int | None = rule(ge=1)
    crop_padding: int = rule(ge=0)
    horizontal_flip: bool


@dataclasses.dataclass(frozen=True)
class TrainAttack:
    eps_255: float = rule(ge=0)
    step_255: float = rule(gt=0)
    steps: int = rule(ge=1)
    init: TrainInit
    init_scale_255: float = rule(ge=0)


@dataclasses.dataclass(frozen=True)
class Train:
    epochs: int = rule(ge=1)
    batch_size: int = rule(ge=1)
    drop_last: bool
    lr: float = rule(gt=0)
    momentum: float = rule(ge=0, lt=1)
    nesterov: bool
    weight_decay: float = rule(ge=0)
    no_decay_bn_and_bias: bool
    decay_final_bn_weight: bool
    lr_milestones: tuple[int, ...] = rule(ge=1, increasing=True)
    lr_gamma: float = rule(gt=0, le=1)
    grad_clip_norm: float = rule(gt=0)
    seed: int = rule(ge=0, lt=2**63)
    precision: Precision
    channels_last: bool
    compile: bool
    cuda_graphs: bool
    deterministic: bool
    attack: TrainAttack


@dataclasses.dataclass(frozen=True)
class Checkpoints:
    save_epochs: tuple[int, ...] = rule(ge=0, length=2)
    best_metric: BestMetric


@dataclasses.dataclass(frozen=True)
class ValidationPGD:
    steps: int = rule(ge=1)
    step_255: float = rule(gt=0)
    eps_255: float = rule(ge=0)
    init: EvalInit


@dataclasses.dataclass(frozen=True)
class ValidationCW(ValidationPGD):
    kappa: float = rule(ge=0)


@dataclasses.dataclass(frozen=True)
class Validation:
    pgd: ValidationPGD
    cw: ValidationCW
    batch_size: int = rule(ge=1)
    lipschitz_offset: float = rule(ge=0)


@dataclasses.dataclass(frozen=True)
class FGSM:
    step_255: float = rule(gt=0)


@dataclasses.dataclass(frozen=True)
class EvalPGD:
    steps: int = rule(ge=1)
    step_255: float = rule(gt=0)
    init: EvalInit


@dataclasses.dataclass(frozen=True)
class EvalCW(EvalPGD):
    kappa: float = rule(ge=0)


@dataclasses.dataclass(frozen=True)
class APGD:
    n_iter: int = rule(ge=1)
    n_restarts: int = rule(ge=1)
    rho: float = rule(gt=0, lt=1)


@dataclasses.dataclass(frozen=True)
class APGDT(APGD):
    n_target_classes: int = rule(ge=1)


@dataclasses.dataclass(frozen=True)
class AutoAttack:
    apgd_ce: APGD
    apgd_t: APGDT


@dataclasses.dataclass(frozen=True)
class MetricVersions:
    clean: int = rule(ge=1)
    fgsm: int = rule(ge=1)
    pgd: int = rule(ge=1)
    cw: int = rule(ge=1)
    aa: int = rule(ge=1)
    corruptions: int = rule(ge=1)
    complexity: int = rule(ge=1)


@dataclasses.dataclass(frozen=True)
class Eval:
    batch_size: int = rule(ge=1)
    eps_255: float = rule(ge=0)
    fgsm: FGSM
    pgd: EvalPGD
    cw: EvalCW
    aa: AutoAttack
    lipschitz_offset: float = rule(ge=0)
    corruption_severities: tuple[int, ...] = rule(ge=1, le=5, nonempty=True, increasing=True)
    seed: int = rule(ge=0, lt=2**63)
    precision: Precision
    compile: bool
    cuda_graphs: bool
    metric_versions: MetricVersions


@dataclasses.dataclass(frozen=True)
class PublishedGpuDays:
    train: float = rule(ge=0)
    eval: float = rule(ge=0)


@dataclasses.dataclass(frozen=True)
class Estimate:
    sample: int = rule(ge=1)
    steps: int = rule(ge=1)
    batch_size: int = rule(ge=1)
    aa_robust_fraction: float = rule(ge=0, le=1)
    published_gpu_days: PublishedGpuDays


@dataclasses.dataclass(frozen=True)
class Packing:
    enabled: bool
    gpu_memory_gib: float | None = rule(gt=0)
    max_per_gpu: int = rule(ge=1)
    headroom: float = rule(gt=0, le=1)
    memory_model: str | None


@dataclasses.dataclass(frozen=True)
class Sweep:
    max_retries: int = rule(ge=0)
    queue_depth: int = rule(ge=1)
    order: SweepOrder
    gpus_per_actor: float = rule(gt=0)
    cpus_per_actor: float = rule(gt=0)
    max_actors: int | None = rule(ge=1)
    packing: Packing
    dry_run_sleep_ms: float = rule(ge=0)
    dry_run_fail_archs: tuple[str, ...]
    progress_every_s: float = rule(gt=0)
    reevaluate_checkpoints: tuple[CheckpointKind, ...] = rule(nonempty=True)
    estimate: Estimate


@dataclasses.dataclass(frozen=True)
class LocalSearch:
    n_init: int = rule(ge=1)


@dataclasses.dataclass(frozen=True)
class Evolution:
    population: int = rule(ge=1)
    tournament: int = rule(ge=1)


@dataclasses.dataclass(frozen=True)
class Bananas:
    n_init: int = rule(ge=1)
    ensemble: int = rule(ge=1)
    proposals: int = rule(ge=1)
    candidates: int = rule(ge=1)
    parents: int = rule(ge=1)


@dataclasses.dataclass(frozen=True)
class NAS:
    budget: int = rule(ge=1)
    runs: int = rule(ge=1)
    objective: SearchObjective
    local_search: LocalSearch
    evolution: Evolution
    bananas: Bananas


@dataclasses.dataclass(frozen=True)
class Settings:
    """One resolved preset, typed. `name` is the preset's name (not a key of the file)."""

    space: Space
    model: Model
    data: Data
    train: Train
    checkpoints: Checkpoints
    validation: Validation
    eval: Eval
    sweep: Sweep
    nas: NAS
    name: str = ""


def parse_settings(raw: dict[str, Any], where: str) -> Settings:
    """The typed `Settings` of a resolved preset dict (without its `name`); `where` prefixes the dotted keys."""
    body = {k: v for k, v in raw.items() if k != "name"} if isinstance(raw, dict) else raw
    settings = _parse(Settings, body, where, {})
    _check_together(settings, where)
    return dataclasses.replace(settings, name=str(raw.get("name", "")))


@cache
def _hints(cls: type) -> dict[str, tuple[Any, dict[str, Any]]]:
    """{field: (type, rule)} of a section (without `name`)."""
    hints = get_type_hints(cls)
    return {f.name: (hints[f.name], dict(f.metadata)) for f in dataclasses.fields(cls) if f.name != "name"}


def _bounds(meta: dict[str, Any]) -> str:
    lo = (">=", meta["ge"]) if meta.get("ge") is not None else (">", meta["gt"]) if meta.get("gt") is not None else None
    hi = ("<=", meta["le"]) if meta.get("le") is not None else ("<", meta["lt"]) if meta.get("lt") is not None else None
    if lo and hi:
        return f" in {'[' if lo[0] == '>=' else '('}{lo[1]}, {hi[1]}{']' if hi[0] == '<=' else ')'}"
    return "".join(f" {b[0]} {b[1]}" for b in (lo, hi) if b)


def describe(tp: Any, meta: dict[str, Any]) -> str:
    """What a value of type `tp` under `meta` may be, in words (`an integer >= 1`, `one of fp32, bf16, fp16`)."""
    origin, args = get_origin(tp), get_args(tp)
    if dataclasses.is_dataclass(tp):
        return f"a mapping with the keys {', '.join(_hints(tp))}"
    if origin is Literal:
        return f"one of {', '.join(map(str, args))}"
    if origin in (Union, types.UnionType):
        inner = next(a for a in args if a is not type(None))
        return f"null or {describe(inner, meta)}"
    if origin is tuple:
        size = f" of {meta['length']} items" if meta.get("length") else " of at least one item" if meta.get(
            "nonempty") else ""
        order = ", strictly increasing" if meta.get("increasing") else ""
        return f"a list{size}, each {describe(args[0], {**meta, **_LIST_KEYS})}{order}"
    noun = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}[tp]
    return noun + _bounds(meta)


def _fail(key: str, value: Any, tp: Any, meta: dict[str, Any]) -> ConfigError:
    hint = ""
    if tp in (int, float) and isinstance(value, str):
        try:
            float(value)
            hint = " (YAML reads it as text: drop the quotes; write 5.0e-4, not 5e-4)"
        except ValueError:
            pass
    return ConfigError(f"{key} is {shown(value)}; expected {describe(tp, meta)}{hint}")


def _in_bounds(x: float, meta: dict[str, Any]) -> bool:
    return not ((meta.get("ge") is not None and x < meta["ge"]) or (meta.get("gt") is not None and x <= meta["gt"])
                or (meta.get("le") is not None and x > meta["le"]) or (meta.get("lt") is not None and x >= meta["lt"]))


def _parse_space(value: Any, key: str) -> Space:
    from nares.spaces import DEFAULT_SPACE, configured_space

    if not isinstance(value, dict):
        raise ConfigError(f"{key} is {shown(value)}; expected a section with the space's name and settings")
    configured_space(value, key)
    items = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in value.items() if k != "name"))
    return Space(name=value.get("name", DEFAULT_SPACE), settings=items)


def _parse(tp: Any, value: Any, key: str, meta: dict[str, Any]) -> Any:
    """`value` checked against `tp`; raises the one-line ConfigError of the first bad key."""
    origin, args = get_origin(tp), get_args(tp)
    if tp is Space:
        return _parse_space(value, key)
    if dataclasses.is_dataclass(tp):
        return _parse_section(tp, value, key)
    if origin is Literal:
        if not isinstance(value, str) or value not in args:
            raise _fail(key, value, tp, meta)
        return value
    if origin in (Union, types.UnionType):
        inner = next(a for a in args if a is not type(None))
        if value is None:
            return None
        try:
            return _parse(inner, value, key, meta)
        except ConfigError:
            raise _fail(key, value, tp, meta) from None
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise _fail(key, value, tp, meta)
        try:
            items = tuple(_parse(args[0], v, key, {**meta, **_LIST_KEYS}) for v in value)
        except ConfigError:
            raise _fail(key, value, tp, meta) from None
        if ((meta.get("length") is not None and len(items) != meta["length"]) or (meta.get("nonempty") and not items)
                or (meta.get("increasing") and any(a >= b for a, b in itertools.pairwise(items)))):
            raise _fail(key, value, tp, meta)
        return items
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool) and _in_bounds(value, meta)
    elif tp is float:
        ok = (isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
              and _in_bounds(value, meta))
        value = float(value) if ok else value
    else:
        ok = isinstance(value, str)
    if not ok:
        raise _fail(key, value, tp, meta)
    return value


def _parse_section(cls: type, value: Any, key: str) -> Any:
    fields = _hints(cls)
    if not isinstance(value, dict):
        raise ConfigError(f"{key} is {shown(value)}; expected {describe(cls, {})}")
    extras = None
    if cls is Eval:  # the sections of registered evaluations and the named suites: checked by their owners, last
        extras, value = value, _eval_typed_part(value, fields)
    for k in value:
        if k not in fields:
            raise ConfigError(f"{key}.{k} is not a setting (the keys of {key} are {', '.join(fields)})")
    out = {}
    for name, (tp, meta) in fields.items():
        if name not in value:
            raise ConfigError(f"{key}.{name} is missing; expected {describe(tp, meta)}")
        out[name] = _parse(tp, value[name], f"{key}.{name}", meta)
    if extras is not None:
        _check_eval_extras(extras, key, fields)
    return cls(**out)


EVAL_SUITE_KEYS = ("suites", "suite")


def _eval_typed_part(value: dict[str, Any], fields: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of an `eval` section that `Eval` types: all but the suites and the registered evaluations' own
    sections (an unknown key stays, for `_parse_section` to refuse)."""
    from nares.evaluations import evaluation_names

    names = set(evaluation_names())
    return {k: v for k, v in value.items() if k not in EVAL_SUITE_KEYS and (k in fields or k not in names)}


def _check_eval_extras(value: dict[str, Any], key: str, fields: Mapping[str, Any]) -> None:
    """`suites` (name → evaluation names), `suite` (one of them or the built-in `nares`) and the sections of
    registered evaluations, each checked by the evaluation's own settings."""
    from nares.evaluations import DEFAULT_SUITE, evaluation_names, get_evaluation

    names = set(evaluation_names())
    suites = value.get("suites", {})
    if not isinstance(suites, dict) or not all(isinstance(v, list) and v and all(isinstance(m, str) for m in v)
                                               for v in suites.values()):
        raise ConfigError(f"{key}.suites is {shown(suites)}; expected a mapping of suite names to lists of "
                          "evaluation names")
    for name, members in suites.items():
        if any(m not in names for m in members) or len(set(members)) != len(members):
            raise ConfigError(f"{key}.suites.{name} is {members}; expected distinct evaluation names of "
                              f"{sorted(names)}")
    chosen = value.get("suite", DEFAULT_SUITE)
    if chosen != DEFAULT_SUITE and chosen not in suites:
        raise ConfigError(f"{key}.suite is {shown(chosen)}; expected {DEFAULT_SUITE} or one of eval.suites "
                          f"({', '.join(suites) or 'none defined'})")
    for k in value:
        if k not in fields and k in names:
            get_evaluation(k).settings({"eval": value}, key)


def _check_together(s: Settings, where: str) -> None:
    """The rules that tie keys together, each reported against the key that breaks it."""
    epochs = s.train.epochs
    if any(m >= epochs for m in s.train.lr_milestones):
        raise ConfigError(f"{where}.train.lr_milestones is {list(s.train.lr_milestones)}; expected epochs below "
                          f"train.epochs ({epochs}), strictly increasing")
    if s.train.nesterov and s.train.momentum == 0:
        raise ConfigError(f"{where}.train.nesterov is True; Nesterov momentum needs train.momentum > 0")
    first, second = s.checkpoints.save_epochs
    if not first <= second < epochs:
        raise ConfigError(f"{where}.checkpoints.save_epochs is {list(s.checkpoints.save_epochs)}; expected two epochs "
                          f"in 0..{epochs - 1} (train.epochs is {epochs}), the first not after the second")
    d = s.data
    if d.val == "holdout" and d.val_holdout < 1:
        raise ConfigError(f"{where}.data.val_holdout is {d.val_holdout}; expected an integer >= 1 when data.val is "
                          "holdout")
    if d.train_limit is not None:
        kept = d.train_limit - (d.val_holdout if d.val == "holdout" else 0)
        if kept < 1:
            raise ConfigError(f"{where}.data.val_holdout is {d.val_holdout}; expected fewer than data.train_limit "
                              f"({d.train_limit})")
        if s.train.drop_last and kept < s.train.batch_size:
            raise ConfigError(f"{where}.train.batch_size is {s.train.batch_size}; expected at most the {kept} training "
                              "images (train.drop_last would leave no batch)")
    n_targets, classes = s.eval.aa.apgd_t.n_target_classes, s.model.num_classes
    if n_targets >= classes:
        raise ConfigError(f"{where}.eval.aa.apgd_t.n_target_classes is {n_targets}; expected at most "
                          f"model.num_classes - 1 ({classes - 1})")
