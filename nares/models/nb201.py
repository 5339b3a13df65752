"""The NAS-Bench-201 network for CIFAR (PROTOCOL §7.1): stem, three stages of cells joined by residual reduction
blocks, BN-ReLU-pool-linear head. Takes plain op names and channels; knows nothing of ids, strings or tables.

Imports torch only (no `nares.spaces`: the space imports this module inside `build_model`).
"""

from __future__ import annotations

import torch
from torch import nn

# The incoming edges of nodes 1, 2, 3, in the order of the NB201 string: (target node, source node).
EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))


class ReLUConvBN(nn.Sequential):
    """ReLU → conv k×k (no bias) → BN, NB201's `nor_conv_k` and the reduction block's halves."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1):
        super().__init__(nn.ReLU(inplace=False), nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False),
                         nn.BatchNorm2d(c_out))


def edge_op(op: str, channels: int) -> nn.Module | None:
    """The module of one cell edge; None for `none` (the edge is dropped: it contributes zero)."""
    if op == "none":
        return None
    if op == "skip_connect":
        return nn.Identity()
    if op == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1)
    if op == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3)
    if op == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(f"unknown NAS-Bench-201 op {op!r}")


class Cell(nn.Module):
    """One NB201 cell: node i = sum of its incoming edges' outputs, output = node 3. `none` edges are left out
    (NB201 multiplies by zero: the same result at no cost); a node whose inputs are all `none` is zero, and the
    edges leaving it still run (as in NB201: a conv-BN of zeros outputs BN's shift, not zero)."""

    def __init__(self, ops: tuple[str, ...], channels: int):
        super().__init__()
        self.live = [(k, t, s) for k, ((t, s), op) in enumerate(zip(EDGES, ops, strict=True)) if op != "none"]
        self.edges = nn.ModuleDict({str(k): edge_op(ops[k], channels) for k, _, _ in self.live})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes: list[torch.Tensor | None] = [x, None, None, None]
        for k, t, s in self.live:
            src = nodes[s] if nodes[s] is not None else torch.zeros_like(x)
            y = self.edges[str(k)](src)
            nodes[t] = y if nodes[t] is None else nodes[t] + y
        return torch.zeros_like(x) if nodes[3] is None else nodes[3]


class ResidualReduction(nn.Module):
    """NB201's stride-2 ResNet block between stages: ReLU-conv3×3 s2-BN, ReLU-conv3×3-BN, plus a shortcut of
    avg-pool 2 and conv 1×1 (no bias)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


class NB201Net(nn.Module):
    """Stem conv3×3 3→C + BN; stages of `cells_per_stage` cells at C, 2C, 4C with a `ResidualReduction` between
    stages; head BN-ReLU, global average pool, linear 4C → classes. C = 16, 5 cells: NAS-Bench-201's CIFAR net."""

    def __init__(self, ops: tuple[str, ...], channels: int = 16, cells_per_stage: int = 5, num_classes: int = 10):
        super().__init__()
        c = channels
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
        layers: list[nn.Module] = []
        for stage in range(3):
            if stage:
                layers.append(ResidualReduction(c, 2 * c))
                c *= 2
            layers.extend(Cell(ops, c) for _ in range(cells_per_stage))
        self.cells = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=False), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.head(self.cells(self.stem(x))))
