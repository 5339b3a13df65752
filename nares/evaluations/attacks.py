"""The attack evaluations of PROTOCOL §3: clean, FGSM, PGD-20, CW-40, AA-Compact.

Each supplies its attack (x, y → x̂ [, robust mask]) from `nares.attacks`; `cell` runs the evaluator
(`nares.attacks.suite.evaluate_attacks`, which owns batching, masks and the per-name generators), so the
numbers are those of today's suite bit for bit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from nares.evaluations.base import FWD, EvalContext, Evaluation, Value, settings_class
from nares.records import pct_from_fraction
from nares.settings import APGD, APGDT, EvalInit, rule

_EPS = (float, rule(ge=0))
_STEP = (float, rule(gt=0))
_STEPS = (int, rule(ge=1))


class AttackEvaluation(Evaluation):
    """An attack of the suite. Metrics: acc (robust accuracy), loss, stable, lip (not for clean and aa)."""

    units: ClassVar[Mapping[str, str]] = {"acc": "percent", "loss": "raw", "stable": "percent", "lip": "raw"}
    published: tuple[str, ...] = ("acc", "stable", "lip")  # the metrics the published record holds

    def section(self, cfg: Mapping[str, Any]) -> dict[str, Any]:
        ev = cfg["eval"]
        sub = dict(ev.get(self.name) or {})
        sub.setdefault("eps_255", ev.get("eps_255"))
        return sub

    def attack_kwargs(self, cfg: Mapping[str, Any]) -> dict[str, Any]:
        from nares.attacks.suite import attack_settings

        return attack_settings(dict(cfg["eval"]), self.name)

    def attack(self, model, x, y, kwargs: dict[str, Any], *, generator=None, precision: str = "fp32"):
        """x̂ of one batch (and the robust mask for attacks that report one)."""
        raise NotImplementedError

    def cell(self, ctx: EvalContext) -> dict[str, Any]:
        from nares.attacks.suite import evaluate_attacks

        ev = ctx.cfg["eval"]
        m = evaluate_attacks(ctx.model, ctx.x, ctx.y, ev, names=[self.name], batch_size=ev["batch_size"],
                             precision=ev["precision"], seed=ev["seed"])[self.name]
        return {"acc": _num(m.acc), "loss": _num(m.loss), "stable": _num(m.stable), "lip": _num(m.lip), "n": int(m.n)}

    def values(self, cell: Mapping[str, Any]) -> list[Value]:
        out = []
        for metric, unit in self.units.items():
            v = cell.get(metric)
            if v is not None:
                out.append(Value(metric, "", pct_from_fraction(float(v)) if unit == "percent" else float(v)))
        return out


class Clean(AttackEvaluation):
    name = "clean"
    Settings = settings_class("CleanSettings")
    units: ClassVar[Mapping[str, str]] = {"acc": "percent", "loss": "raw"}
    published = ("acc", "loss")

    def section(self, cfg):
        return {}

    def cost(self, settings, n_images: int) -> float:
        return n_images * FWD

    def attack(self, model, x, y, kwargs, *, generator=None, precision="fp32"):
        return x


class FGSM(AttackEvaluation):
    name = "fgsm"
    Settings = settings_class("FGSMSettings", eps_255=_EPS, step_255=_STEP)
    published = ("acc", "stable")

    def cost(self, settings, n_images: int) -> float:
        return n_images * (1 + FWD)

    def attack(self, model, x, y, kwargs, *, generator=None, precision="fp32"):
        from nares.attacks.pgd import fgsm

        return fgsm(model, x, y, precision=precision, **kwargs)


class PGD(AttackEvaluation):
    name = "pgd"
    Settings = settings_class("PGDSettings", eps_255=_EPS, steps=_STEPS, step_255=_STEP, init=(EvalInit, None))

    def cost(self, settings, n_images: int) -> float:
        return n_images * (settings.steps + FWD)

    def attack(self, model, x, y, kwargs, *, generator=None, precision="fp32"):
        from nares.attacks.pgd import pgd

        return pgd(model, x, y, generator=generator, precision=precision, **kwargs)


class CW(PGD):
    name = "cw"
    Settings = settings_class("CWSettings", eps_255=_EPS, steps=_STEPS, step_255=_STEP, init=(EvalInit, None),
                              kappa=(float, rule(ge=0)))


class AA(AttackEvaluation):
    """AA-Compact (APGD-CE, then APGD-T on the points still robust). `robust_fraction`: the share of points
    APGD-T still attacks, for the cost model only (`sweep.estimate.aa_robust_fraction`, 1 when absent)."""

    name = "aa"
    Settings = settings_class("AASettings", eps_255=_EPS, apgd_ce=(APGD, None), apgd_t=(APGDT, None),
                              robust_fraction=(float, rule(ge=0, le=1)))
    units: ClassVar[Mapping[str, str]] = {"acc": "percent", "loss": "raw"}
    published = ("acc",)

    def section(self, cfg: Mapping[str, Any]) -> dict[str, Any]:
        est = ((cfg.get("sweep") or {}).get("estimate") or {})
        return {**super().section(cfg), "robust_fraction": est.get("aa_robust_fraction", 1.0)}

    def cost(self, settings, n_images: int) -> float:
        ce, t = settings.apgd_ce, settings.apgd_t
        apgd_t = settings.robust_fraction * t.n_iter * t.n_restarts * t.n_target_classes
        return n_images * (ce.n_iter * ce.n_restarts + apgd_t + FWD)

    def attack(self, model, x, y, kwargs, *, generator=None, precision="fp32"):
        from nares.attacks.apgd import aa_compact

        return aa_compact(model, x, y, generator=generator, precision=precision, **kwargs)


def _num(v) -> float | None:
    return None if v is None else float(v)
