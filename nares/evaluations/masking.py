"""Gradient-masking checks per evaluated model, in the spirit of AutoAttack's own checks (Croce & Hein 2020):

- `nondeterministic`: the largest |Δlogit| between two identical forward passes in eval mode (> `tol`: a randomised
  model, whose robust accuracy a fixed-seed attack overstates);
- `zero_grad`: the share of points whose input gradient of CE is (numerically) zero, ‖∇ₓL‖∞ ≤ `grad_tol`;
- `softmax_output`: 1 when the model's outputs already look like probabilities (every row in [0, 1] and summing to
  1 within `tol`): CE on them vanishes into flat gradients;
- `eps_not_monotone`: the largest rise of robust accuracy (percentage points) along the `pgd_eps` curve when the run
  has one, else along clean ≥ FGSM ≥ PGD ≥ AA of the same checkpoint (`cells` of the evaluator's ledger).

Values only flag; the release gate reports them (`nares.validation_long`). Must not import the store, Prefect,
Ray or the app.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from nares.evaluations.base import FWD, EvalContext, Evaluation, Value, settings_class
from nares.settings import rule


def masking_flags(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, tol: float = 1e-5,
                  grad_tol: float = 1e-12) -> dict[str, float]:
    """The three model checks on one batch (see the module docstring)."""
    model.eval()
    with torch.no_grad():
        a, b = model(x).float(), model(x).float()
    nondet = float((a - b).abs().max())
    rows_ok = bool(((a >= -tol) & (a <= 1 + tol)).all()) and bool(((a.sum(1) - 1).abs() <= tol).all())
    xg = x.detach().clone().requires_grad_(True)
    loss = F.cross_entropy(model(xg).float(), y, reduction="sum")
    (grad,) = torch.autograd.grad(loss, xg)
    zero = float((grad.flatten(1).abs().amax(1) <= grad_tol).double().mean())
    return {"nondeterministic": nondet, "zero_grad": zero, "softmax_output": float(rows_ok)}


def curve_rise(accuracies: list[float]) -> float:
    """The largest rise between an accuracy and any later one of a curve meant to be non-increasing (≥ 0)."""
    rise, low = 0.0, float("inf")
    for a in accuracies:
        rise = max(rise, a - low)
        low = min(low, a)
    return rise


class MaskingChecks(Evaluation):
    """The gradient-masking flags of the evaluated checkpoint on the first `batch_size` test images."""

    name = "masking"
    Settings = settings_class("MaskingSettings", batch_size=(int, rule(ge=1)), tol=(float, rule(gt=0)),
                              grad_tol=(float, rule(ge=0)))
    units: ClassVar[Mapping[str, str]] = {"nondeterministic": "raw", "zero_grad": "raw", "softmax_output": "raw",
                                          "eps_not_monotone": "raw"}

    def cost(self, settings: Any, n_images: int) -> float:
        return min(n_images, settings.batch_size) * (1 + 2 * FWD)

    def cell(self, ctx: EvalContext) -> dict[str, Any]:
        s = self.settings(ctx.cfg)
        flags = masking_flags(ctx.model, ctx.x[:s.batch_size], ctx.y[:s.batch_size], tol=s.tol, grad_tol=s.grad_tol)
        return {**flags, "eps_not_monotone": _rise_of_run(ctx)}

    def values(self, cell: Mapping[str, Any]) -> list[Value]:
        return [Value(m, "", float(cell[m])) for m in self.units if cell.get(m) is not None]


def _rise_of_run(ctx: EvalContext) -> float | None:
    """`curve_rise` in percentage points of the run's pgd_eps curve, else of clean ≥ FGSM ≥ PGD ≥ AA (None when the
    run holds neither; the evaluator passes the run's cells as `ctx.cells`)."""
    cells = ctx.cells or {}
    if "pgd_eps" in cells:
        curve = [c["acc"] for _, c in sorted(((float(k), c) for k, c in cells["pgd_eps"].items()
                                              if isinstance(c, Mapping)), key=lambda t: t[0])]
        return 100 * curve_rise(curve)
    chain = [cells[m]["acc"] for m in ("clean", "fgsm", "pgd", "aa") if m in cells and cells[m].get("acc") is not None]
    return 100 * curve_rise(chain) if len(chain) >= 2 else None
