"""The pre-activation Wide ResNet (PROTOCOL §1), built from plain stage depths, channels and strides.

Knows no search space: `nares.spaces.wrn.build_model` maps an architecture and the preset's width base to
these numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nares.models.layers import PreActBlock


class PreActWRN(nn.Module):
    """Stem conv3×3 (3→stem) → stages of pre-activation blocks (given depths, channels, first-block strides)
    → BN-ReLU-GAP-linear.

    Inputs are images in [0, 1]; there is no normalisation layer.
    """

    def __init__(self, depths: Sequence[int], channels: Sequence[int], strides: Sequence[int] = (1, 2, 2), *,
                 stem_channels: int = 16, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, stem_channels, 3, padding=1, bias=False)
        stages = []
        c_in = stem_channels
        for depth, c_out, stride in zip(depths, channels, strides, strict=True):
            blocks = [PreActBlock(c_in if i == 0 else c_out, c_out, stride if i == 0 else 1) for i in range(depth)]
            stages.append(nn.Sequential(*blocks))
            c_in = c_out
        self.stage1, self.stage2, self.stage3 = stages
        self.bn = nn.BatchNorm2d(c_in)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_in, num_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        out = self.stage3(self.stage2(self.stage1(out)))
        out = torch.relu(self.bn(out))
        out = torch.flatten(self.pool(out), 1)
        return self.fc(out)
