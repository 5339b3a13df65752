"""Per-sample attack losses on logits (higher = more adversarial): CW margin, DLR and targeted DLR.

All return a float32 vector of length batch; none reduces over the batch.
"""

from __future__ import annotations

import torch


def _true_and_best_other(logits: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    z = logits.float()
    z_y = z.gather(1, y[:, None]).squeeze(1)
    others = z.scatter(1, y[:, None], float("-inf"))
    return z_y, others.amax(dim=1)


def margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Z_y − max_{i≠y} Z_i per sample (positive ⇔ correctly classified)."""
    z_y, z_other = _true_and_best_other(logits, y)
    return z_y - z_other


def cw_margin_loss(logits: torch.Tensor, y: torch.Tensor, kappa: float = 0.0) -> torch.Tensor:
    """CW loss −max(Z_y − max_{i≠y} Z_i, −κ); with κ = 0 (the protocol) −max(Z_y − max_{i≠y} Z_i, 0)."""
    return -torch.clamp(margin(logits, y), min=-float(kappa))


def dlr_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """DLR loss −(z_y − max_{i≠y} z_i) / (z_π1 − z_π3 + 1e−12), π sorting logits in decreasing order."""
    z = logits.float()
    top = z.topk(3, dim=1).values
    return -margin(z, y) / (top[:, 0] - top[:, 2] + 1e-12)


def dlr_targeted_loss(logits: torch.Tensor, y: torch.Tensor, y_target: torch.Tensor) -> torch.Tensor:
    """Targeted DLR loss −(z_y − z_t) / (z_π1 − (z_π3 + z_π4)/2 + 1e−12)."""
    z = logits.float()
    top = z.topk(4, dim=1).values
    z_y = z.gather(1, y[:, None]).squeeze(1)
    z_t = z.gather(1, y_target[:, None]).squeeze(1)
    return -(z_y - z_t) / (top[:, 0] - 0.5 * (top[:, 2] + top[:, 3]) + 1e-12)
