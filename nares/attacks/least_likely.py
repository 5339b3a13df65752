"""Least-likely-class targeted PGD, L∞: the step of Jung et al.'s Eq. 2 (PROTOCOL §7.2), offered beside their
untargeted PGD.

The target of each point is the class of its lowest logit on the clean image; from the same start as
`nares.attacks.pgd.pgd` (uniform in the ε-ball, or x), each of `steps` steps descends the CE loss towards the
target: x̂ ← P(x̂ − α·sign(∇ₓ CE(f(x̂), y_LL))), P the projection on the ε-ball ∩ [0, 1]. The true labels are
not used. The step loop makes no host sync.

Depends on torch only; must not import training, storage, orchestration or app code.
"""

from __future__ import annotations

import torch
from torch import nn

from nares.attacks.common import ce_loss, check_eps, check_precision, check_steps, forward, sign_steps, start

LEAST_LIKELY_INITS = ("uniform", "none")


def least_likely_class(model: nn.Module, x: torch.Tensor, precision: str = "fp32") -> torch.Tensor:
    """The class of the lowest logit of each point on x (first index on ties)."""
    with torch.no_grad():
        return forward(model, x.detach(), precision).argmin(dim=1)


def pgd_least_likely(
    model: nn.Module,
    x: torch.Tensor,
    *,
    eps: float,
    step: float,
    steps: int,
    init: str = "uniform",
    generator: torch.Generator | None = None,
    precision: str = "fp32",
) -> torch.Tensor:
    """`steps` projected signed-gradient descent steps of size `step` on CE towards the least-likely class.

    init: "uniform" starts from x + U(−ε, ε) clipped to [0, 1] (drawn from `generator`, the draw `pgd` makes),
    "none" from x. The result is the last iterate.
    """
    eps = check_eps(eps)
    check_precision(precision)
    check_steps(steps)
    x = x.detach()
    target = least_likely_class(model, x, precision)
    x_adv = start(x, init, eps, generator, inits=LEAST_LIKELY_INITS)
    # x̂ − α·sign(∇): the same step with −α, bit for bit (IEEE negation is exact)
    return sign_steps(model, x_adv, x, target, ce_loss, eps=eps, step=-step, steps=steps, precision=precision)
