"""A small CNN for attack tests: fast on a CPU, no architecture of the search space needed."""

from __future__ import annotations

import torch
from torch import nn


def small_cnn(seed: int = 0, width: int = 8) -> nn.Sequential:
    """Three stride-2 conv-BN-ReLU layers (width, 2·width, 4·width) → global pool → linear, seeded."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    c_in = 3
    for c_out in (width, 2 * width, 4 * width):
        layers += [
            nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(),
        ]
        c_in = c_out
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, 10))
