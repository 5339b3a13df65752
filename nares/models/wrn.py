"""The pre-activation Wide ResNet of the NARes space (PROTOCOL §1), built from an `Arch`."""

from __future__ import annotations

import torch
from torch import nn

from nares.models.layers import PreActBlock
from nares.space import Arch

STEM_CHANNELS = 16
NUM_CLASSES = 10


def stage_channels(arch: Arch, width_base: int = 16) -> tuple[int, int, int]:
    """Channels of the three stages: width_base·2^(i-1)·Wi (16·W1, 32·W2, 64·W3 in the full protocol)."""
    return tuple(width_base * 2**i * w for i, w in enumerate(arch.widths))  # type: ignore[return-value]


class PreActWRN(nn.Module):
    """Stem conv3×3 (3→16) → 3 stages of pre-activation blocks (strides 1, 2, 2) → BN-ReLU-GAP-linear.

    Inputs are images in [0, 1]; there is no normalisation layer.
    """

    def __init__(self, arch: Arch, width_base: int = 16, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.arch = arch
        self.width_base = width_base
        self.conv1 = nn.Conv2d(3, STEM_CHANNELS, 3, padding=1, bias=False)
        stages = []
        c_in = STEM_CHANNELS
        for depth, c_out, stride in zip(arch.depths, stage_channels(arch, width_base), (1, 2, 2), strict=True):
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


def build_model(arch: Arch | str, width_base: int = 16, num_classes: int = NUM_CLASSES) -> PreActWRN:
    """Build the WRN of `arch` (an Arch or its `D1-W1-D2-W2-D3-W3` string)."""
    return PreActWRN(Arch.parse(arch), width_base=width_base, num_classes=num_classes)
