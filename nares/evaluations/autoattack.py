"""AutoAttack's standard ensemble on demand (evaluation `autoattack`: APGD-CE, APGD-T, FAB-T, Square) and
FAB-T alone (evaluation `fab_t`), L∞ at `eval.eps_255`.

The ensemble only orchestrates, as AutoAttack's `run_standard_evaluation`: `run_stages` keeps one robustness
flag per test point (first: classified right on x), runs the stages in order, each on the points still robust
only, re-batched by `eval.batch_size`, and lowers the flags of the points a stage fools. A stage is an attack
(x, y → robust mask) from `nares.attacks` (`apgd`, `fab`, `square`); it never sees a point already broken.

Values: `acc`, the final robust accuracy; `acc_after` keyed by stage (apgd_ce, apgd_t, fab_t, square), the
robust accuracy after that stage (non-increasing, the last = `acc`); `attacked` keyed by stage, the number of
points the stage attacked. Square is query-based and the costliest: `square.limit` lets it attack only the
points among the first `limit` test images (null: all); with a limit below the test size `acc` is AutoAttack's
on those images and APGD-CE + APGD-T + FAB-T's on the others (an upper bound on AutoAttack's there).

Must not import the store, Prefect, Ray or the app.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from nares.errors import ConfigError
from nares.evaluations.base import FWD, EvalContext, Evaluation, Value, settings_class
from nares.records import pct_from_fraction
from nares.settings import APGD, APGDT, rule

STAGES = ("apgd_ce", "apgd_t", "fab_t", "square")  # AutoAttack's standard order ('apgd-ce', 'apgd-t', 'fab-t', 'square')

FABSettings = settings_class("FABSettings", n_iter=(int, rule(ge=1)), n_restarts=(int, rule(ge=1)),
                             n_target_classes=(int, rule(ge=1)), alpha_max=(float, rule(ge=0, le=1)),
                             eta=(float, rule(gt=0)), beta=(float, rule(gt=0, le=1)))
SquareStageSettings = settings_class("SquareStageSettings", n_queries=(int, rule(ge=1)),
                                     p_init=(float, rule(gt=0, le=1)), n_restarts=(int, rule(ge=1)),
                                     resc_schedule=(bool, None), limit=(int | None, rule(ge=1)))


@dataclass(frozen=True)
class Stage:
    """One attack of an ensemble: `attack(x, y)` → robust mask of those points; `limit`: attack only points
    among the first `limit` of the data (None: all)."""

    name: str
    attack: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    limit: int | None = None


def clean_mask(model: Any, x: torch.Tensor, y: torch.Tensor, batch_size: int, precision: str) -> torch.Tensor:
    """True where the model classifies x right (batched forward passes, no gradient)."""
    from nares.attacks.common import forward

    parts = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            parts.append(forward(model, x[i:i + batch_size], precision).argmax(dim=1) == y[i:i + batch_size])
    return torch.cat(parts)


def run_stages(x: torch.Tensor, y: torch.Tensor, robust: torch.Tensor, stages: Sequence[Stage],
               batch_size: int) -> tuple[dict[str, float], dict[str, int]]:
    """Run `stages` in order, each on the points still robust (within its `limit`) in batches of `batch_size`;
    `robust` (one flag per point) is lowered in place where a stage fools a point. Returns ({stage: robust
    accuracy after it}, {stage: number of points it attacked}). One host sync per stage, selecting the points."""
    acc_after, attacked = {}, {}
    for stage in stages:
        idx = robust.nonzero().squeeze(1)
        if stage.limit is not None:
            idx = idx[idx < stage.limit]
        for chunk in idx.split(batch_size):
            still = stage.attack(x.index_select(0, chunk), y.index_select(0, chunk))
            robust.index_copy_(0, chunk, robust.index_select(0, chunk) & still.to(robust.device))
        attacked[stage.name] = int(idx.numel())
        acc_after[stage.name] = float(robust.double().mean())
    return acc_after, attacked


def _seed(ctx: EvalContext, name: str) -> int:
    from nares.attacks.suite import _attack_seed

    return _attack_seed(ctx.cfg["eval"]["seed"], name)


def _fab_stage(ctx: EvalContext, name: str, eps: float, f: Any) -> Stage:
    from nares.attacks.fab import fab_targeted_with_mask

    g = torch.Generator().manual_seed(_seed(ctx, name))  # FAB's restarts draw on the CPU (the reference's order)
    precision = ctx.cfg["eval"]["precision"]
    return Stage("fab_t", lambda x, y: fab_targeted_with_mask(
        ctx.model, x, y, eps=eps, n_iter=f.n_iter, n_restarts=f.n_restarts, n_target_classes=f.n_target_classes,
        alpha_max=f.alpha_max, eta=f.eta, beta=f.beta, generator=g, precision=precision)[1])


def _check_targets(cfg: Mapping[str, Any], key: str, n_targets: int) -> None:
    classes = (cfg.get("model") or {}).get("num_classes")
    if classes is not None and n_targets > classes - 1:
        raise ConfigError(f"{key} is {n_targets}; expected at most model.num_classes - 1 ({classes - 1})")


class _EnsembleEvaluation(Evaluation):
    """Shared: `eps_255` from `eval.eps_255` unless the section sets its own; batching of `run_stages`."""

    def section(self, cfg: Mapping[str, Any]) -> dict[str, Any]:
        sub = dict(cfg["eval"].get(self.name) or {})
        sub.setdefault("eps_255", cfg["eval"].get("eps_255"))
        return sub

    def stages(self, ctx: EvalContext, settings: Any) -> list[Stage]:
        raise NotImplementedError

    def cell(self, ctx: EvalContext) -> dict[str, Any]:
        s = self.settings(ctx.cfg)
        ev = ctx.cfg["eval"]
        robust = clean_mask(ctx.model, ctx.x, ctx.y, ev["batch_size"], ev["precision"])
        acc_after, attacked = run_stages(ctx.x, ctx.y, robust, self.stages(ctx, s), ev["batch_size"])
        return {"acc": float(robust.double().mean()), "acc_after": acc_after, "attacked": attacked,
                "n": len(ctx.x)}


class AutoAttackStandard(_EnsembleEvaluation):
    """AutoAttack, standard version (Croce & Hein 2020; `autoattack.py`, version='standard', L∞): APGD-CE
    (100 iterations, 1 restart, ρ 0.75), APGD-T (DLR-targeted, 9 targets × 100 iterations, 1 restart),
    FAB-T (9 targets × 100 iterations, 1 restart, α_max 0.1, η 1.05, β 0.9) and Square (5,000 queries, p_init
    0.8, 1 restart, margin loss, no schedule rescaling), each on the points still robust.

    Cost: n clean forwards, APGD-CE on all n, and APGD-T, FAB-T and Square on a share `robust_fraction` of the
    points (`sweep.estimate.aa_robust_fraction`, 1 when absent; Square on the first `square.limit` only)."""

    name = "autoattack"
    Settings = settings_class("AutoAttackSettings", eps_255=(float, rule(ge=0)), apgd_ce=(APGD, None),
                              apgd_t=(APGDT, None), fab_t=(FABSettings, None), square=(SquareStageSettings, None),
                              robust_fraction=(float, rule(ge=0, le=1)))
    units: ClassVar[Mapping[str, str]] = {"acc": "percent", "acc_after": "percent", "attacked": "count"}

    def section(self, cfg: Mapping[str, Any]) -> dict[str, Any]:
        est = ((cfg.get("sweep") or {}).get("estimate") or {})
        return {**super().section(cfg), "robust_fraction": est.get("aa_robust_fraction", 1.0)}

    def settings(self, cfg: Mapping[str, Any], where: str = "eval") -> Any:
        s = super().settings(cfg, where)
        for stage in ("apgd_t", "fab_t"):
            _check_targets(cfg, f"{where}.{self.name}.{stage}.n_target_classes", getattr(s, stage).n_target_classes)
        return s

    def cost(self, settings: Any, n_images: int) -> float:
        from nares.attacks.fab import fab_passes
        from nares.attacks.square import square_cost

        ce, t, f, q = settings.apgd_ce, settings.apgd_t, settings.fab_t, settings.square
        fab_grad, fab_fwd = fab_passes(f.n_iter, 1, f.n_restarts, f.n_target_classes)
        n_square = n_images if q.limit is None else min(n_images, q.limit)
        later = t.n_iter * t.n_restarts * t.n_target_classes + fab_grad + fab_fwd * FWD
        return (n_images * (FWD + ce.n_iter * ce.n_restarts) + settings.robust_fraction * n_images * later
                + settings.robust_fraction * n_square * square_cost(q.n_queries, 1, q.n_restarts) * FWD)

    def stages(self, ctx: EvalContext, settings: Any) -> list[Stage]:
        from nares.attacks.apgd import apgd_targeted_with_mask, apgd_with_mask
        from nares.attacks.square import square_with_mask

        s, model = settings, ctx.model
        eps, precision = s.eps_255 / 255, ctx.cfg["eval"]["precision"]
        g_ce, g_t = (torch.Generator(device=ctx.x.device).manual_seed(_seed(ctx, f"{self.name}/{k}"))
                     for k in ("apgd_ce", "apgd_t"))
        g_square = torch.Generator().manual_seed(_seed(ctx, f"{self.name}/square"))  # Square draws on the CPU
        ce, t, q = s.apgd_ce, s.apgd_t, s.square
        return [
            Stage("apgd_ce", lambda x, y: apgd_with_mask(
                model, x, y, eps=eps, n_iter=ce.n_iter, n_restarts=ce.n_restarts, rho=ce.rho, loss="ce",
                generator=g_ce, precision=precision)[1]),
            Stage("apgd_t", lambda x, y: apgd_targeted_with_mask(
                model, x, y, eps=eps, n_iter=t.n_iter, n_restarts=t.n_restarts, rho=t.rho,
                n_target_classes=t.n_target_classes, generator=g_t, precision=precision)[1]),
            _fab_stage(ctx, f"{self.name}/fab_t", eps, s.fab_t),
            Stage("square", lambda x, y: square_with_mask(
                model, x, y, eps=eps, n_queries=q.n_queries, p_init=q.p_init, n_restarts=q.n_restarts,
                resc_schedule=q.resc_schedule, generator=g_square, precision=precision)[1], limit=q.limit),
        ]

    def values(self, cell: Mapping[str, Any]) -> list[Value]:
        out = [Value("acc", "", pct_from_fraction(float(cell["acc"])))]
        out += [Value("acc_after", k, pct_from_fraction(float(v))) for k, v in cell["acc_after"].items()]
        return out + [Value("attacked", k, float(v)) for k, v in cell["attacked"].items()]


class FABTargeted(_EnsembleEvaluation):
    """FAB-T alone (L∞, AutoAttack's settings: 9 targets × 100 iterations, 1 restart, α_max 0.1, η 1.05, β 0.9)
    on every test point: its robust accuracy `acc`."""

    name = "fab_t"
    Settings = settings_class("FABTSettings", eps_255=(float, rule(ge=0)), n_iter=(int, rule(ge=1)),
                              n_restarts=(int, rule(ge=1)), n_target_classes=(int, rule(ge=1)),
                              alpha_max=(float, rule(ge=0, le=1)), eta=(float, rule(gt=0)),
                              beta=(float, rule(gt=0, le=1)))
    units: ClassVar[Mapping[str, str]] = {"acc": "percent"}

    def settings(self, cfg: Mapping[str, Any], where: str = "eval") -> Any:
        s = super().settings(cfg, where)
        _check_targets(cfg, f"{where}.{self.name}.n_target_classes", s.n_target_classes)
        return s

    def cost(self, settings: Any, n_images: int) -> float:
        from nares.attacks.fab import fab_passes

        grad, fwd = fab_passes(settings.n_iter, n_images, settings.n_restarts, settings.n_target_classes)
        return n_images * FWD + grad + fwd * FWD

    def stages(self, ctx: EvalContext, settings: Any) -> list[Stage]:
        return [_fab_stage(ctx, self.name, settings.eps_255 / 255, settings)]

    def values(self, cell: Mapping[str, Any]) -> list[Value]:
        return [Value("acc", "", pct_from_fraction(float(cell["acc"])))]
