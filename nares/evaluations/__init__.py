"""Evaluations as plug-ins: the registry by name (`register_evaluation`, `get_evaluation`, `evaluation_names`)
and named suites (`suite(cfg, name)`: `eval.suites[name]`, default the `nares` suite of PROTOCOL §3).

Owns the mapping name → `Evaluation`; the interface is `nares.evaluations.base`, the built-ins
`nares.evaluations.attacks` and `.others`. Must not import the store, Prefect, Ray, flows, tasks or the app.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nares.errors import ConfigError
from nares.evaluations.base import EvalContext, Evaluation, Value, check_units

NARES_SUITE: tuple[str, ...] = ("clean", "fgsm", "pgd", "cw", "aa", "corruptions", "complexity")
DEFAULT_SUITE = "nares"
_EVALUATIONS: dict[str, Evaluation] = {}


def _builtins() -> None:
    if "clean" in _EVALUATIONS:
        return
    from nares.evaluations.attacks import AA, CW, FGSM, PGD, Clean
    from nares.evaluations.autoattack import AutoAttackStandard, FABTargeted
    from nares.evaluations.corruption_confusion import CorruptionConfusion
    from nares.evaluations.fsp import FSPDistance
    from nares.evaluations.masking import MaskingChecks
    from nares.evaluations.others import Complexity, Corruptions
    from nares.evaluations.proxies import HessianEigenvalue, JacobianNorm
    from nares.evaluations.robnet import MIFGSM, PGD100
    from nares.evaluations.spectra import (
        APGDSpectrum,
        Confusion,
        FGSMSpectrum,
        PGDSpectrum,
        Square,
        SquareSpectrum,
        WideSpectrum,
    )

    for cls in (Clean, FGSM, PGD, CW, AA, Corruptions, Complexity, Confusion, FGSMSpectrum, PGDSpectrum,
                WideSpectrum, Square, JacobianNorm, HessianEigenvalue, MaskingChecks, FSPDistance,
                CorruptionConfusion, APGDSpectrum, SquareSpectrum, FABTargeted, AutoAttackStandard, PGD100, MIFGSM):
        _EVALUATIONS.setdefault(cls.name, cls())


def register_evaluation(ev: Evaluation) -> Evaluation:
    """Register `ev` under `ev.name` (re-registering a name replaces it)."""
    if not isinstance(ev, Evaluation):
        raise TypeError(f"register_evaluation expects an Evaluation, got {type(ev).__name__}")
    check_units(ev)
    _builtins()
    _EVALUATIONS[ev.name] = ev
    return ev


def evaluation_names() -> list[str]:
    from nares.plugins import load_plugins

    _builtins()
    load_plugins()
    return list(_EVALUATIONS)


def get_evaluation(name: str) -> Evaluation:
    """The evaluation registered as `name`; an unknown name is one ConfigError line listing the known ones."""
    names = evaluation_names()
    if name not in _EVALUATIONS:
        raise ConfigError(f"unknown evaluation {name!r} (known: {', '.join(names)})")
    return _EVALUATIONS[name]


def suites(cfg: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """The preset's named suites: `eval.suites` plus the built-in `nares` suite unless the preset redefines it."""
    out = {DEFAULT_SUITE: NARES_SUITE}
    for name, members in (cfg["eval"].get("suites") or {}).items():
        out[str(name)] = tuple(members)
    return out


def suite(cfg: Mapping[str, Any], name: str | None = None) -> list[str]:
    """The evaluation names of suite `name` (default `eval.suite`, else `nares`), each checked against the
    registry and its settings checked against the preset; bad input is one ConfigError line before any work."""
    name = name or cfg["eval"].get("suite") or DEFAULT_SUITE
    known = suites(cfg)
    if name not in known:
        raise ConfigError(f"unknown suite {name!r} (the preset's suites: {', '.join(known)})")
    members = list(known[name])
    if not members or len(set(members)) != len(members):
        raise ConfigError(f"eval.suites.{name} is {members}; expected distinct evaluation names")
    for member in members:
        get_evaluation(member).settings(cfg)
    return members


def suite_cost(cfg: Mapping[str, Any], n_images: Mapping[str, int], name: str | None = None) -> float:
    """Image-gradient passes of a suite: Σ cost(settings, n), n = n_images[evaluation], else
    n_images[evaluation.cost_images], else n_images["test"]."""
    total = 0.0
    for member in suite(cfg, name):
        ev = get_evaluation(member)
        total += ev.cost(ev.settings(cfg), n_images.get(member, n_images.get(ev.cost_images, n_images.get("test", 0))))
    return total


__all__ = ["DEFAULT_SUITE", "NARES_SUITE", "EvalContext", "Evaluation", "Value", "evaluation_names", "get_evaluation",
           "register_evaluation", "suite", "suite_cost", "suites"]
