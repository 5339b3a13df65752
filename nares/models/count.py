"""Parameters and MACs of a real module, counted by walking its layers (checks every space's closed form)."""

from __future__ import annotations

import torch
from torch import nn

IMAGE_SIZE = 32


def count_module(model: nn.Module, image_size: int = IMAGE_SIZE) -> tuple[int, int]:
    """(params, MACs) of a real module on one image, in the torchprofile convention: conv and linear MACs
    plus one per output element of every batch-norm and pooling op."""
    total = 0

    def hook(mod: nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(mod, nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
            total += out.numel() * k
        elif isinstance(mod, nn.Linear):
            total += out.numel() * mod.in_features
        elif isinstance(mod, nn.BatchNorm2d | nn.AdaptiveAvgPool2d | nn.AvgPool2d):
            total += out.numel()

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, 3, image_size, image_size))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return sum(p.numel() for p in model.parameters()), total
