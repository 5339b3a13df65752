"""The RobNet network (PROTOCOL §7.4; Guo et al., "When NAS Meets Robustness", code gmh14/RobNets), built from
plain per-cell edge operations.

Knows no search space: `nares.spaces.robnet.build_model` maps an architecture to the (identity, conv) bits of the
14 edges of every cell. The wiring follows RobNets' `models/basic_model.py` (itself DARTS'): stem conv3×3 + BN to
3·C channels; `layers` cells (20 in RobNets' CIFAR network; the space setting `cells`), the ones at `layers // 3`
and `2·layers // 3` reduction cells (stride 2 on the edges from the two cell inputs, channels doubled); each cell's
inputs are preprocessed (ReLU-conv1×1-BN, or a factorized reduce when the previous-previous input is twice as
large); node k of 0..3 sums its edges from the two inputs and the k earlier nodes; the cell's output concatenates
the 4 nodes; head: global average pool + linear.

Differences from RobNets, all chosen so that params and MACs are exact in closed form and equal in the module walk
(`nares.models.count`) and in torchprofile: every BatchNorm is affine (RobNets' cell BNs are not, and torchprofile
counts no MACs for a non-affine BN); a zero edge is no module and no op (RobNets multiplies its input by 0, an
`aten::mul` torchprofile counts); a node whose edges are all zero is a tensor of zeros; an input preprocessing is
built only when some edge of the cell reads that input. Inputs are images in [0, 1]; no normalisation layer.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

STEPS = 4  # intermediate nodes per cell


def edge_wiring() -> list[tuple[int, int]]:
    """(source state, target node) of each of the 14 edges in RobNets' order: node k of 0..3 reads states
    0 .. k+1 (states 0, 1: the cell inputs; state 2 + k: node k)."""
    return [(j, k) for k in range(STEPS) for j in range(2 + k)]


class ReLUConvBN(nn.Module):
    """ReLU → conv1×1 (c_in → c_out) → BN."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.op = nn.Sequential(nn.ReLU(), nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class FactorizedReduce(nn.Module):
    """ReLU → two stride-2 conv1×1 (c_in → c_out/2), the second on the input shifted by one pixel, concatenated → BN."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        if c_out % 2:
            raise ValueError(f"factorized reduce needs an even number of output channels, got {c_out}")
        self.relu = nn.ReLU()
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))


class SepConv(nn.Module):
    """RobNets' separable conv, applied twice: (ReLU, depthwise 3×3 (stride), pointwise 1×1, BN), then again with
    stride 1."""

    def __init__(self, c: int, stride: int):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(), nn.Conv2d(c, c, 3, stride=stride, padding=1, groups=c, bias=False),
            nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c),
            nn.ReLU(), nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False),
            nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Edge(nn.Module):
    """The sum of the edge's chosen ops: separable conv and/or identity (a factorized reduce across stride 2).
    An edge with neither op is the zero op: it holds no module and `forward` is never called."""

    def __init__(self, c: int, stride: int, identity: bool, conv: bool):
        super().__init__()
        self.conv = SepConv(c, stride) if conv else None
        self.identity = (nn.Identity() if stride == 1 else FactorizedReduce(c, c)) if identity else None

    @property
    def is_zero(self) -> bool:
        return self.conv is None and self.identity is None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.conv is not None and self.identity is not None:
            return self.conv(x) + self.identity(x)
        return self.conv(x) if self.conv is not None else self.identity(x)  # type: ignore[misc]


class Cell(nn.Module):
    """One RobNet cell of given edge bits ((identity, conv) per edge, RobNets' order), c channels per node."""

    def __init__(self, edges: Sequence[tuple[int, int]], c_pp: int, c_p: int, c: int, reduction: bool,
                 reduction_prev: bool):
        super().__init__()
        wiring = edge_wiring()
        if len(edges) != len(wiring):
            raise ValueError(f"a RobNet cell has {len(wiring)} edges, got {len(edges)}")
        sources = [s for s, _ in wiring]
        self.c, self.stride = c, 2 if reduction else 1
        used = {s for s, (i, v) in zip(sources, edges, strict=True) if i or v}
        self.preprocess0 = (FactorizedReduce(c_pp, c) if reduction_prev else ReLUConvBN(c_pp, c)) \
            if 0 in used else None
        self.preprocess1 = ReLUConvBN(c_p, c) if 1 in used else None
        self.edges = nn.ModuleList(
            Edge(c, self.stride if s < 2 else 1, bool(i), bool(v)) for s, (i, v) in zip(sources, edges, strict=True))
        # per node: (source state, edge index) of its non-zero edges
        self.node_inputs = [[(s, e) for e, (s, t) in enumerate(wiring) if t == k and not self.edges[e].is_zero]
                            for k in range(STEPS)]

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        n, _, h, w = s1.shape
        shape = (n, self.c, -(-h // self.stride), -(-w // self.stride))
        states: list[torch.Tensor | None] = [
            self.preprocess0(s0) if self.preprocess0 is not None else None,
            self.preprocess1(s1) if self.preprocess1 is not None else None,
        ]
        for inputs in self.node_inputs:
            node = None
            for s, e in inputs:
                term = self.edges[e](states[s])
                node = term if node is None else node + term
            states.append(node if node is not None else torch.zeros(shape, dtype=s1.dtype, device=s1.device))
        return torch.cat(states[2:], dim=1)  # type: ignore[arg-type]


class RobNet(nn.Module):
    """Stem conv3×3 + BN (3 → stem_multiplier·C) → cells (one edge-bit list per cell) → global pool → linear."""

    def __init__(self, cells: Sequence[Sequence[tuple[int, int]]], channels: int, num_classes: int = 10,
                 stem_multiplier: int = 3):
        super().__init__()
        layers = len(cells)
        c_stem = stem_multiplier * channels
        self.stem = nn.Sequential(nn.Conv2d(3, c_stem, 3, padding=1, bias=False), nn.BatchNorm2d(c_stem))
        c_pp, c_p, c = c_stem, c_stem, channels
        reduction_prev = False
        blocks = []
        for i, edges in enumerate(cells):
            reduction = i in (layers // 3, 2 * layers // 3)
            if reduction:
                c *= 2
            blocks.append(Cell(edges, c_pp, c_p, c, reduction, reduction_prev))
            reduction_prev = reduction
            c_pp, c_p = c_p, STEPS * c
        self.cells = nn.ModuleList(blocks)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return self.classifier(torch.flatten(self.global_pooling(s1), 1))
