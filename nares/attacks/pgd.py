"""FGSM and L∞ PGD (cross-entropy or CW margin loss), batched, seeded, with no host sync in the step loop.

Every attack returns x̂ (detached, same shape as x) inside the ε-ball around x and inside [0, 1], and
runs the model in whatever train/eval mode the caller set (it never changes it).
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from nares.attacks.common import (
    AttackError,
    LossFn,
    ce_loss,
    check_eps,
    check_precision,
    check_steps,
    loss_and_grad,
    project,
    sign_steps,
    start,
)
from nares.attacks.losses import cw_margin_loss

PGD_LOSSES = ("ce", "cw")
PGD_INITS = ("uniform", "gaussian", "none")


def fgsm(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    step: float | None = None,
    precision: str = "fp32",
) -> torch.Tensor:
    """One signed-gradient step of the CE loss from x (no random start); `step` defaults to ε."""
    eps = check_eps(eps)
    check_precision(precision)
    x = x.detach()
    _, _, grad = loss_and_grad(model, x, y, ce_loss, precision)
    return project(x + (eps if step is None else float(step)) * grad.sign(), x, eps)


def pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    step: float,
    steps: int,
    loss: str = "ce",
    init: str = "uniform",
    init_scale: float | None = None,
    generator: torch.Generator | None = None,
    kappa: float = 0.0,
    precision: str = "fp32",
) -> torch.Tensor:
    """`steps` projected signed-gradient ascent steps of size `step` on `loss` ("ce" or "cw" margin, κ=`kappa`).

    init: "uniform" starts from x + U(−s, s) with s = `init_scale` (default ε), clipped to [0, 1];
    "gaussian" from x + `init_scale`·N(0, 1) unclipped (the published PGD-AT start; the first step's
    projection brings it into the ball); "none" from x. Noise comes from `generator` (a torch.Generator,
    ideally on x's device), else from torch's global RNG. The result is the last iterate.
    """
    eps = check_eps(eps)
    check_precision(precision)
    check_steps(steps)
    loss_fn = _pgd_loss(loss, kappa)
    x = x.detach()
    x_adv = start(x, init, eps, generator, inits=PGD_INITS, init_scale=init_scale)
    return sign_steps(model, x_adv, x, y, loss_fn, eps=eps, step=step, steps=steps, precision=precision)


def _pgd_loss(loss: str, kappa: float) -> LossFn:
    if loss == "ce":
        return ce_loss
    if loss == "cw":
        return partial(cw_margin_loss, kappa=kappa)
    raise AttackError(f"loss {loss!r} is not one of {', '.join(PGD_LOSSES)}")
