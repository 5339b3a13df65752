"""Shared building blocks of the WRN family: the pre-activation basic block."""

from __future__ import annotations

import torch
from torch import nn


def conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False)


class PreActBlock(nn.Module):
    """BN-ReLU-conv3×3(stride) → BN-ReLU-conv3×3, with a 1×1 projection (on the pre-activated input) on shape change."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = conv3x3(c_in, c_out, stride)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = conv3x3(c_out, c_out)
        self.shortcut = nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False) if (stride != 1 or c_in != c_out) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = torch.relu(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(a)
        out = self.conv1(a)
        out = self.conv2(torch.relu(self.bn2(out)))
        return out + skip
