"""The robustness evaluations of the neighbouring datasets (PROTOCOL §7.2–§7.3): the clean confusion cell, the
Jung et al. ε-spectra (FGSM, PGD-40 untargeted or least-likely targeted, APGD-CE, Square), the Wsr-NAS wide
spectrum (PGD-20, mean `avg_rob`) and Square at one ε.

Every ε cell keeps, from the forward pass the evaluator makes on the attacked images anyway, its accuracy, CE
loss, confusion matrix (rows = true class, columns = predicted), mean softmax by true and by predicted class and
the mean confidence of correct and incorrect predictions (`nares.evaluate.confusion`). Keys: ε in 1/255 units
("8", "0.5", "255"; Wsr: ε as a fraction of the pixel range, "0.03") for scalars, "<ε>/<true>/<pred>" for
matrices. Must not import the store, Prefect, Ray or the app.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F

from nares.evaluations.base import FWD, EvalContext, Evaluation, Value, settings_class
from nares.records import pct_from_fraction
from nares.settings import EvalInit, rule

PGDTarget = Literal["untargeted", "least_likely"]

CONFUSION_UNITS: dict[str, str] = {"acc": "percent", "loss": "raw", "cm": "count", "conf_true": "raw",
                                   "conf_pred": "raw", "conf_correct": "raw", "conf_incorrect": "raw"}
_EPS_LIST = (tuple[float, ...], rule(gt=0, nonempty=True, increasing=True))


def eps_key(eps: float) -> str:
    """The key of an ε: its shortest exact decimal form ("8", "0.5", "0.03")."""
    return f"{eps:g}" if float(f"{eps:g}") == eps else repr(float(eps))


def _seed(ctx: EvalContext, name: str) -> int:
    from nares.attacks.suite import _attack_seed

    return _attack_seed(ctx.cfg["eval"]["seed"], name)


def _confusion_cell(ctx: EvalContext, attack: Callable, eps: float) -> dict[str, Any]:
    """{acc, loss, cm, conf_true, conf_pred, conf_correct, conf_incorrect, n} of `attack(x, y, eps)` (image units),
    batched by eval.batch_size, the logits under the preset's precision."""
    from nares.attacks.common import forward
    from nares.evaluate.confusion import ConfusionStats

    ev = ctx.cfg["eval"]
    stats, loss_sum = ConfusionStats(ctx.cfg["model"]["num_classes"]), 0.0
    for i in range(0, len(ctx.x), ev["batch_size"]):
        xb, yb = ctx.x[i:i + ev["batch_size"]], ctx.y[i:i + ev["batch_size"]]
        x_adv = attack(xb, yb, eps)
        with torch.no_grad():
            logits = forward(ctx.model, x_adv, ev["precision"]).float()
        stats.update(logits, yb)
        loss_sum += float(F.cross_entropy(logits, yb, reduction="sum"))
    cell = stats.result().cell()
    return {**cell, "loss": loss_sum / cell["n"]}


def _cell_values(cell: Mapping[str, Any], key: str = "") -> list[Value]:
    """The rows of one confusion cell: scalars at `key`, matrix entries at "<key>/<true>/<pred>"."""
    from nares.evaluate.confusion import confusion_rows

    out = [Value(m, "/".join(p for p in (key, sub) if p), pct_from_fraction(v) if m == "acc" else v)
           for m, sub, v in confusion_rows(dict(cell))]
    return [*out, Value("loss", key, float(cell["loss"]))]


def _spectrum_cell(ctx: EvalContext, eps_list: tuple[float, ...], attack: Callable, scale: float) -> dict[str, Any]:
    """{key(ε): confusion cell of `attack` at ε·scale (image units)} for each ε."""
    return {eps_key(eps): _confusion_cell(ctx, attack, eps * scale) for eps in eps_list}


def _spectrum_values(cell: Mapping[str, Any]) -> list[Value]:
    return [v for key, c in cell.items() if isinstance(c, Mapping) for v in _cell_values(c, key)]


class Confusion(Evaluation):
    """The clean cell of the Jung et al. layout: accuracy, loss, confusion and confidence on the test images."""

    name = "confusion"
    Settings = settings_class("ConfusionSettings")
    units: ClassVar[Mapping[str, str]] = CONFUSION_UNITS

    def section(self, cfg: Mapping[str, Any]) -> dict[str, Any]:
        return {}

    def cost(self, settings: Any, n_images: int) -> float:
        return n_images * FWD

    def cell(self, ctx: EvalContext) -> dict[str, Any]:
        return _confusion_cell(ctx, lambda x, y, eps: x, 0.0)

    def values(self, cell: Mapping[str, Any]) -> list[Value]:
        return _cell_values(cell)


class FGSMSpectrum(Evaluation):
    """FGSM (CE, one step of ε, no random start) at each ε of `eps_255` (Jung et al.: 0.1 … 8 and 255)."""

    name = "fgsm_eps"
    Settings = settings_class("FGSMSpectrumSettings", eps_255=_EPS_LIST)
    units: ClassVar[Mapping[str, str]] = CONFUSION_UNITS

    def cost(self, settings: Any, n_images: int) -> float:
        return len(settings.eps_255) * n_images * (1 + FWD)

    def cell(self, ctx: EvalContext) -> dict[str, Any]:
        from nares.attacks.pgd import fgsm

        s = self.settings(ctx.cfg)
        precision = ctx.cfg["eval"]["precision"]
        return _spectrum_cell(ctx, s.eps_255, lambda x, y, e: fgsm(ctx.model, x, y, eps=e, precision=precision),
                              1 / 255)

    def values(self, cell: Mapping[str, Any]) -> list[Value]:
        return _spectrum_values(cell)


class PGDSpectrum(Evaluation):
    """PGD (CE) at each ε of `eps_255`: `steps` steps of ε·`step_fraction` from `init` (Jung et al.: 40 steps of
    ε/30 from a uniform start). `target`: `untargeted` ascends the CE of the true class (Jung et al.'s runs);
    `least_likely` descends the CE of each point's least-likely class on the clean logits (their Eq. 2,
    `nares.attacks.least_likely`), one more forward pass per point and ε."""

    name = "pgd_eps"
    Settings = settings_class("PGDSpectrumSettings", eps_255=_EPS_LIST, steps=(int, rule(ge=1)),
                              step_fraction=(float, rule(gt=0)), init=(EvalInit, None), target=(PGDTarget, None))
    units: ClassVar[Mapping[str, str]] = CONFUSION_UNITS

    def cost(self, settings: Any, n_images: int) -> float:
        target = FWD if settings.target == "least_likely" else 0.0
        return len(settings.eps_255) * n_images * (settings.steps + FWD + target)

    def cell(self, ctx: EvalContext) -> dict[str, Any]:
        s = self.settings(ctx.cfg)
        if s.target == "least_likely":
            attack = _least_likely_attack(ctx, self.name, s.steps, s.step_fraction, s.init)
        else:
            attack = _pgd_attack(ctx, self.name, s.steps, s.step_fraction, s.init)
        return _spectrum_cell(ctx, s.eps_255, attack, 1 / 255)

    def values(self, cell: Mapping[str, Any]) -> list[Value]:
        return _spectrum_values(cell)


def _pgd_attack(ctx: EvalContext, name: str, steps: int, step_fraction: float, init: str) -> Callable:
    from nares.attacks.pgd import pgd

    g = torch.Generator(device=ctx.x.device).manual_seed(_seed(ctx, name))
    precision = ctx.cfg["eval"]["precision"]
    return lambda x, y, e: pgd(ctx.model, x, y, eps=e, step=e * step_fraction, steps=steps, init=init,
                               generator=g, precision=precision)


def _least_likely_attack(ctx: EvalContext, name: str, steps: int, step_fraction: float, init: str) -> Callable:
    from nares.attacks.least_likely import pgd_least_likely

    g = torch.Generator(device=ctx.x.device).manual_seed(_seed(ctx, name))
    precision = ctx.cfg["eval"]["precision"]
    return lambda x, y, e: pgd_least_likely(ctx.model, x, eps=e, step=e * step_fraction, steps=steps, init=init,
                                            generator=g, precision=precision)


class APGDSpectrum(Evaluation):
    """APGD-CE (AutoAttack's: `n_iter` iterations, `n_restarts`, ρ = `rho`; `nares.attacks.apgd`) at each ε of
    `eps_255` (Jung et al.: 100 iterations, 1 restart, at the ε of `pgd_eps`). x̂ is the fooling iterate where one
    was found, else the highest-loss one, so the cell's accuracy is APGD's robust accuracy."""

    name = "apgd_eps"
    Settings = settings_class("APGDSpectrumSettings", eps_255=_EPS_LIST, n_iter=(int, rule(ge=1)),
                              n_restarts=(int, rule(ge=1)), rho=(float, rule(gt=0, lt=1)))
    units: ClassVar[Mapping[str, str]] = CONFUSION_UNITS

    def cost(self, settings: Any, n_images: int) -> float:
        """APGD's convention (`aa`): n_iter·n_restarts gradient passes per point, + the cell's forward pass."""
        return len(settings.eps_255) * n_images * (settings.n_iter * settings.n_restarts + FWD)

    def cell(self, ctx: EvalContext) -> dict[str, Any]:
        from nares.attacks.apgd import apgd

        s = self.settings(ctx.cfg)
        g = torch.Generator(device=ctx.x.device).manual_seed(_seed(ctx, self.name))
        precision = ctx.cfg["eval"]["precision"]
        return _spectrum_cell(ctx, s.eps_255, lambda x, y, e: apgd(
            ctx.model, x, y, eps=e, n_iter=s.n_iter, n_restarts=s.n_restarts, rho=s.rho, loss="ce", generator=g,
            precision=precision), 1 / 255)

    def values(self, cell: Mapping[str, Any]) -> list[Value]:
        return _spectrum_values(cell)


class SquareSpectrum(Evaluation):
    """Square (L∞, margin loss; `nares.attacks.square`) at each ε of `eps_255` on the first `limit` test images
    (null: all) (Jung et al.: 5,000 queries, p_init 0.8, 1 restart). Each ε cell also keeps `queries`, the mean
    number of queries per image (0 for points misclassified on x)."""

    name = "square_eps"
    Settings = settings_class("SquareSpectrumSettings", eps_255=_EPS_LIST, n_queries=(int, rule(ge=1)),
                              p_init=(float, rule(gt=0, le=1)), n_restarts=(int, rule(ge=1)),
                              resc_schedule=(bool, None), limit=(int | None, rule(ge=1)))
    units: ClassVar[Mapping[str, str]] = {**CONFUSION_UNITS, "queries": "raw"}

    def cost(self, settings: Any, n_images: int) -> float:
        """Forward passes only: Square's queries (`square_cost`) + the cell's forward pass, per ε."""
        from nares.attacks.square import square_cost

        n = n_images if settings.limit is None else min(n_images, settings.limit)
        return len(settings.eps_255) * (square_cost(settings.n_queries, n, settings.n_restarts) + n) * FWD

    def cell(self, ctx: EvalContext) -> dict[str, Any]:
        from nares.attacks.square import square_with_mask

        s = self.settings(ctx.cfg)
        n = len(ctx.x) if s.limit is None else min(len(ctx.x), s.limit)
        sub = dataclasses.replace(ctx, x=ctx.x[:n], y=ctx.y[:n])
        g = torch.Generator().manual_seed(_seed(ctx, self.name))  # Square draws on the CPU (torchattacks' order)
        precision = ctx.cfg["eval"]["precision"]
        queries: dict[float, float] = {}

        def attack(x: torch.Tensor, y: torch.Tensor, e: float) -> torch.Tensor:
            x_adv, _, q = square_with_mask(ctx.model, x, y, eps=e, n_queries=s.n_queries, p_init=s.p_init,
                                           n_restarts=s.n_restarts, resc_schedule=s.resc_schedule, generator=g,
                                           precision=precision)
            queries[e] = queries.get(e, 0.0) + float(q.double().sum())
            return x_adv

        cell = _spectrum_cell(sub, s.eps_255, attack, 1 / 255)  # runs the ε in order: `queries` keeps that order
        return {key: {**c, "queries": total / n} for (key, c), total in zip(cell.items(), queries.values(), strict=True)}

    def values(self, cell: Mapping[str, Any]) -> list[Value]:
        return [*_spectrum_values(cell), *(Value("queries", key, float(c["queries"])) for key, c in cell.items())]


class WideSpectrum(Evaluation):
    """Wsr-NAS: PGD at each ε of `eps` (pixel-range fractions 0.03 … 0.25), `steps` steps of `step_factor`·ε/steps,
    and `avg_rob`, the mean robust accuracy over the ε (a NAS objective on validation data)."""

    name = "wsr"
    Settings = settings_class("WideSpectrumSettings", eps=(tuple[float, ...], rule(gt=0, le=1, nonempty=True,
                                                                                   increasing=True)),
                              steps=(int, rule(ge=1)), step_factor=(float, rule(gt=0)), init=(EvalInit, None))
    units: ClassVar[Mapping[str, str]] = {**CONFUSION_UNITS, "avg_rob": "percent"}

    def cost(self, settings: Any, n_images: int) -> float:
        return len(settings.eps) * n_images * (settings.steps + FWD)

    def cell(self, ctx: EvalContext) -> dict[str, Any]:
        s = self.settings(ctx.cfg)
        cell = _spectrum_cell(ctx, s.eps, _pgd_attack(ctx, self.name, s.steps, s.step_factor / s.steps, s.init), 1.0)
        return {**cell, "avg_rob": sum(c["acc"] for c in cell.values()) / len(cell)}

    def values(self, cell: Mapping[str, Any]) -> list[Value]:
        return [*_spectrum_values(cell), Value("avg_rob", "", pct_from_fraction(float(cell["avg_rob"])))]


class Square(Evaluation):
    """Square (L∞, score-based, margin loss, AutoAttack's standard settings) on the first `limit` test images
    (null: all): robust accuracy and the mean number of queries per image."""

    name = "square"
    Settings = settings_class("SquareSettings", eps_255=(float, rule(ge=0)), n_queries=(int, rule(ge=1)),
                              p_init=(float, rule(gt=0, le=1)), n_restarts=(int, rule(ge=1)),
                              resc_schedule=(bool, None), limit=(int | None, rule(ge=1)))
    units: ClassVar[Mapping[str, str]] = {"acc": "percent", "queries": "raw"}

    def section(self, cfg: Mapping[str, Any]) -> dict[str, Any]:
        sub = dict(cfg["eval"].get(self.name) or {})
        sub.setdefault("eps_255", cfg["eval"].get("eps_255"))
        return sub

    def cost(self, settings: Any, n_images: int) -> float:
        from nares.attacks.square import square_cost

        n = n_images if settings.limit is None else min(n_images, settings.limit)
        return square_cost(settings.n_queries, n, settings.n_restarts) * FWD

    def cell(self, ctx: EvalContext) -> dict[str, Any]:
        from nares.attacks.square import square_with_mask

        s = self.settings(ctx.cfg)
        n = len(ctx.x) if s.limit is None else min(len(ctx.x), s.limit)
        robust, queries = [], []
        g = torch.Generator().manual_seed(_seed(ctx, self.name))  # Square draws on the CPU (torchattacks' order)
        bs = ctx.cfg["eval"]["batch_size"]
        for i in range(0, n, bs):
            j = min(n, i + bs)
            _, r, q = square_with_mask(ctx.model, ctx.x[i:j], ctx.y[i:j], eps=s.eps_255 / 255, n_queries=s.n_queries,
                                       p_init=s.p_init, n_restarts=s.n_restarts, resc_schedule=s.resc_schedule,
                                       generator=g, precision=ctx.cfg["eval"]["precision"])
            robust.append(r.cpu())
            queries.append(q.cpu())
        r, q = torch.cat(robust), torch.cat(queries)
        return {"acc": float(r.double().mean()), "queries": float(q.double().mean()), "n": int(n)}

    def values(self, cell: Mapping[str, Any]) -> list[Value]:
        return [Value("acc", "", pct_from_fraction(float(cell["acc"]))), Value("queries", "", float(cell["queries"]))]
