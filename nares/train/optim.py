"""The PGD-AT optimiser (PROTOCOL §2): SGD with name-based weight-decay exemptions and an epoch step schedule."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

FINAL_BN_WEIGHT = "bn.weight"  # the head batch-norm's weight in PreActWRN


def decays(name: str, train_cfg: dict[str, Any]) -> bool:
    """Whether parameter `name` is weight-decayed.

    The published code exempts every parameter whose name contains `bn` or `bias`; its head BN
    weight escapes that rule, which `decay_final_bn_weight: true` reproduces.
    """
    if train_cfg["decay_final_bn_weight"] and name == FINAL_BN_WEIGHT:
        return True
    return not (train_cfg["no_decay_bn_and_bias"] and ("bn" in name or "bias" in name))


def make_optimizer(model: nn.Module, train_cfg: dict[str, Any]) -> torch.optim.SGD:
    """SGD over two groups: decayed parameters and exempt ones (weight decay 0)."""
    decayed, exempt = [], []
    for name, p in model.named_parameters():
        (decayed if decays(name, train_cfg) else exempt).append(p)
    groups = [
        {"params": decayed, "weight_decay": train_cfg["weight_decay"]},
        {"params": exempt, "weight_decay": 0.0},
    ]
    return torch.optim.SGD(
        groups, lr=train_cfg["lr"], momentum=train_cfg["momentum"], nesterov=train_cfg["nesterov"],
    )


def lr_at(epoch: int, train_cfg: dict[str, Any]) -> float:
    """Learning rate of 0-based `epoch`: lr × gamma^(number of milestones ≤ epoch)."""
    drops = sum(1 for m in train_cfg["lr_milestones"] if epoch >= m)
    return train_cfg["lr"] * train_cfg["lr_gamma"] ** drops


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
