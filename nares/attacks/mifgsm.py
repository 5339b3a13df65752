"""MI-FGSM, L∞ (Dong et al. 2018, "Boosting Adversarial Attacks with Momentum"), one of the attacks RobNets
(PROTOCOL §7.4) reports.

From x (no random start), `steps` iterations of
    g ← μ·g + ∇ₓ CE(f(x̂), y) / mean|∇ₓ CE(f(x̂), y)|,    x̂ ← P(x̂ + α·sign(g)),
P the projection on the ε-ball ∩ [0, 1]. The paper normalises the gradient by its L1 norm; the mean absolute
value is that norm divided by the image size, the same for every point and iteration, so g is the paper's up
to one positive factor and sign(g), hence x̂, is the same (torchattacks' `MIFGSM` normalises the same way). A
zero gradient contributes nothing. The step loop makes no host sync.

Depends on torch only; must not import training, storage, orchestration or app code.
"""

from __future__ import annotations

import torch
from torch import nn

from nares.attacks.common import (
    AttackError,
    ce_loss,
    check_eps,
    check_precision,
    check_steps,
    loss_and_grad,
    project,
)


def mifgsm(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    step: float,
    steps: int,
    decay: float = 1.0,
    precision: str = "fp32",
) -> torch.Tensor:
    """MI-FGSM: `steps` momentum (μ = `decay`) signed-gradient steps of size `step` on the CE loss, from x."""
    eps = check_eps(eps)
    check_precision(precision)
    check_steps(steps)
    if not decay >= 0:
        raise AttackError(f"decay={decay} must be ≥ 0 (the momentum factor μ)")
    x = x.detach()
    x_adv, g = x.clone(), torch.zeros_like(x)
    dims = tuple(range(1, x.ndim))
    tiny = torch.finfo(x.dtype).tiny
    for _ in range(steps):
        _, _, grad = loss_and_grad(model, x_adv, y, ce_loss, precision)
        g = decay * g + grad / grad.abs().mean(dim=dims, keepdim=True).clamp_min(tiny)
        x_adv = project(x_adv + step * g.sign(), x, eps)
    return x_adv
