"""Exact parameter and MAC counts of every architecture (PROTOCOL §1), in closed form.

MACs follow the `torchprofile` convention the published dataset used: conv and linear MACs
plus one per output element of every batch-norm and pooling op, for one 32×32 image.
`count_module` walks a real module with forward hooks to check the closed form.
"""

from __future__ import annotations

from functools import cache

import torch
from torch import nn

from nares.models.wrn import NUM_CLASSES, STEM_CHANNELS, stage_channels
from nares.space import Arch

IMAGE_SIZE = 32


@cache
def _counts(arch: Arch, width_base: int) -> tuple[int, int]:
    params = 3 * 9 * STEM_CHANNELS
    macs = 3 * 9 * STEM_CHANNELS * IMAGE_SIZE**2
    c_in, hw = STEM_CHANNELS, IMAGE_SIZE
    for depth, c, stride in zip(arch.depths, stage_channels(arch, width_base), (1, 2, 2), strict=True):
        for i in range(depth):
            cin_b, s = (c_in, stride) if i == 0 else (c, 1)
            hw_in, hw_out = hw, hw // s
            params += 2 * cin_b + 9 * cin_b * c + 2 * c + 9 * c * c  # bn1, conv1, bn2, conv2
            macs += cin_b * hw_in**2 + 9 * cin_b * c * hw_out**2 + c * hw_out**2 + 9 * c * c * hw_out**2
            if s != 1 or cin_b != c:
                params += cin_b * c
                macs += cin_b * c * hw_out**2
            hw = hw_out
        c_in = c
    params += 2 * c_in + c_in * NUM_CLASSES + NUM_CLASSES  # head bn, fc
    macs += c_in * hw**2 + c_in + c_in * NUM_CLASSES  # head bn, global pool, fc
    return params, macs


def params(arch: Arch | str, width_base: int = 16) -> int:
    """Number of parameters (BN γ/β and the fc bias included)."""
    return _counts(Arch.parse(arch), width_base)[0]


def macs(arch: Arch | str, width_base: int = 16) -> int:
    """Multiply-accumulates for one 32×32 image in the torchprofile convention."""
    return _counts(Arch.parse(arch), width_base)[1]


def count_module(model: nn.Module, image_size: int = IMAGE_SIZE) -> tuple[int, int]:
    """(params, MACs) of a real module, counted by walking its layers with forward hooks on one image."""
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
