"""Per-sample robustness measures beside accuracy: prediction stability and the empirical Lipschitz estimate."""

from __future__ import annotations

import torch

LIPSCHITZ_OFFSET = 1e-6  # PROTOCOL §3: added to every element of x − x̂ before the ∞-norm (published code)


def stable_mask(pred_clean: torch.Tensor, pred_adv: torch.Tensor) -> torch.Tensor:
    """True where the prediction on x̂ equals the prediction on x (correctness not required).

    Its mean is the stable accuracy of the attack that produced x̂.
    """
    if pred_clean.shape != pred_adv.shape:
        raise ValueError(f"prediction shapes differ: {tuple(pred_clean.shape)} vs {tuple(pred_adv.shape)}")
    return pred_clean == pred_adv


def empirical_lipschitz(
    logits_clean: torch.Tensor,
    logits_adv: torch.Tensor,
    x: torch.Tensor,
    x_adv: torch.Tensor,
    offset: float = LIPSCHITZ_OFFSET,
) -> torch.Tensor:
    """‖f(x) − f(x̂)‖₁ / ‖(x − x̂) + offset‖∞ per sample, on logits, in float32."""
    num = (logits_clean.float() - logits_adv.float()).abs().flatten(1).sum(dim=1)
    den = ((x.float() - x_adv.float()) + offset).abs().flatten(1).amax(dim=1)
    return num / den
