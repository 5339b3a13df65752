"""The diagnostic proxies of Jung et al. (PROTOCOL §7.2) as evaluations: the input-Jacobian Frobenius norm of the
logits (random projections) and the dominant eigenvalue of the input Hessian of CE (power iteration), each
averaged over `batches` × `batch_size` test images, on the evaluated checkpoint (key "test") and, with `at_init`,
on the same architecture freshly initialised from the evaluation seed (key "test@init": no training needed).

The computations are `nares.proxies`; must not import the store, Prefect, Ray or the app.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import torch

from nares.evaluations.base import EvalContext, Evaluation, Value, settings_class
from nares.settings import rule

_COMMON = {"batches": (int, rule(ge=1)), "batch_size": (int, rule(ge=1)), "at_init": (bool, None)}


def _models(ctx: EvalContext, at_init: bool, seed: int) -> dict[str, Any]:
    """{"test": the evaluated model} plus {"test@init": the architecture at initialisation} when asked."""
    out = {"test": ctx.model}
    if at_init:
        with torch.random.fork_rng(devices=[]):  # the initialisation draws leave the process's RNG as it was
            torch.manual_seed(seed)
            fresh = ctx.space.build_model(ctx.arch, ctx.cfg["model"]["width_base"],
                                          num_classes=ctx.cfg["model"]["num_classes"])
        out["test@init"] = fresh.to(ctx.x.device).eval()
    return out


def _batches(ctx: EvalContext, batches: int, batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The first `batches` batches of the test images (fewer when the test set is smaller: all it has)."""
    n = min(len(ctx.x), batches * batch_size)
    return [(ctx.x[i:i + batch_size], ctx.y[i:i + batch_size]) for i in range(0, n, batch_size)]


def _per_model(ctx: EvalContext, s: Any, seed: int, fn: Callable) -> dict[str, float]:
    from nares.proxies import over_batches

    batches = _batches(ctx, s.batches, s.batch_size)
    return {key: over_batches(lambda b, m=model: fn(m, b), batches) for key, model in
            _models(ctx, s.at_init, seed).items()}


class JacobianNorm(Evaluation):
    """‖∂logits/∂x‖_F per image by `n_projections` random projections (unit-sphere directions scaled by √C:
    unbiased for ‖J‖²_F), mean over images and batches."""

    name = "jacobian"
    Settings = settings_class("JacobianSettings", n_projections=(int, rule(ge=1)), **_COMMON)
    units: ClassVar[Mapping[str, str]] = {"frobenius": "raw"}

    def cost(self, settings: Any, n_images: int) -> float:
        n = min(n_images, settings.batches * settings.batch_size) * (2 if settings.at_init else 1)
        return n * settings.n_projections

    def cell(self, ctx: EvalContext) -> dict[str, Any]:
        from nares.attacks.suite import _attack_seed
        from nares.proxies import jacobian_frobenius

        s = self.settings(ctx.cfg)
        seed = _attack_seed(ctx.cfg["eval"]["seed"], self.name)
        g = torch.Generator(device=ctx.x.device).manual_seed(seed)
        return _per_model(ctx, s, seed, lambda m, b: jacobian_frobenius(
            m, b[0], n_projections=s.n_projections, generator=g, reduction="mean"))

    def values(self, cell: Mapping[str, Any]) -> list[Value]:
        return [Value("frobenius", k, float(v)) for k, v in cell.items()]


class HessianEigenvalue(Evaluation):
    """The dominant eigenvalue of each image's input Hessian of CE by power iteration on Hessian-vector products
    (`iterations` at most, relative tolerance `tol`), mean over images and batches; `converged` = the share of
    batches whose iteration converged."""

    name = "hessian"
    Settings = settings_class("HessianSettings", iterations=(int, rule(ge=1)), tol=(float, rule(gt=0)), **_COMMON)
    units: ClassVar[Mapping[str, str]] = {"top_eig": "raw", "converged": "raw"}

    def cost(self, settings: Any, n_images: int) -> float:
        n = min(n_images, settings.batches * settings.batch_size) * (2 if settings.at_init else 1)
        return n * 2 * settings.iterations  # a Hessian-vector product ≈ two gradient passes

    def cell(self, ctx: EvalContext) -> dict[str, Any]:
        from nares.attacks.suite import _attack_seed
        from nares.proxies import hessian_top_eigenvalue

        s = self.settings(ctx.cfg)
        seed = _attack_seed(ctx.cfg["eval"]["seed"], self.name)
        g = torch.Generator(device=ctx.x.device).manual_seed(seed)
        flags: dict[str, list[bool]] = {}

        def run(model, batch) -> float:
            value, converged, _ = hessian_top_eigenvalue(model, *batch, iterations=s.iterations, tol=s.tol,
                                                         generator=g)
            flags.setdefault("test" if model is ctx.model else "test@init", []).append(converged)
            return value

        values = _per_model(ctx, s, seed, run)
        return {"top_eig": values, "converged": {k: sum(v) / len(v) for k, v in flags.items()}}

    def values(self, cell: Mapping[str, Any]) -> list[Value]:
        return [Value(m, k, float(v)) for m in ("top_eig", "converged") for k, v in cell[m].items()]
