"""Per-epoch validation (PROTOCOL §2): clean, PGD and CW on the validation split, with the `validation` settings."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def as_tensors(images, device: torch.device, channels_last: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """An `ImageSet` as float images in [0,1] and int64 labels on `device` (channels-last if asked)."""
    images = images.to(device)
    x = images.float01()
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, images.y


def validate_epoch(net: nn.Module, val_set, cfg: dict[str, Any], seed: int, device: torch.device) -> dict[str, float]:
    """Validation metrics of one epoch as history entries (val_loss, val_acc, pgd…, cw…).

    `evaluate_attacks` runs `net` in eval mode and restores its train/eval modes afterwards.
    """
    from nares.attacks.suite import evaluate_attacks

    section = cfg["validation"]
    x, y = as_tensors(val_set, device, cfg["train"]["channels_last"])
    res = evaluate_attacks(net, x, y, section, names=["clean", "pgd", "cw"], batch_size=section["batch_size"],
                           precision=cfg["train"]["precision"], seed=seed)
    out = {"val_loss": res["clean"].loss, "val_acc": res["clean"].acc}
    for name in ("pgd", "cw"):
        m = res[name]
        out.update({name: m.acc, f"{name}_stable": m.stable, f"{name}_lip": m.lip, f"{name}_loss": m.loss})
    return {k: float(v) for k, v in out.items()}
