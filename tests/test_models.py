"""The pre-activation WRN of PROTOCOL §1: structure, initialisation and shapes."""

from __future__ import annotations

import torch
from torch import nn

from nares.models.layers import PreActBlock
from nares.spaces.wrn import Arch, build_model, stage_channels


def test_structure_follows_protocol() -> None:
    arch = Arch(4, 8, 5, 10, 7, 12)
    m = build_model(arch, width_base=16)
    assert stage_channels(arch, 16) == (128, 320, 768)
    assert m.conv1.in_channels == 3 and m.conv1.out_channels == 16 and m.conv1.bias is None
    for stage, depth, c, stride in zip((m.stage1, m.stage2, m.stage3), (4, 5, 7), (128, 320, 768), (1, 2, 2), strict=True):
        assert len(stage) == depth
        first = stage[0]
        assert isinstance(first, PreActBlock) and first.conv1.stride == (stride, stride)
        assert first.shortcut is not None and first.shortcut.kernel_size == (1, 1) and first.shortcut.bias is None
        assert all(b.shortcut is None and b.conv1.out_channels == c for b in stage[1:])
    assert m.fc.in_features == 768 and m.fc.out_features == 10 and m.fc.bias is not None
    assert not any(isinstance(x, nn.Conv2d) and x.bias is not None for x in m.modules())


def test_init_and_forward() -> None:
    torch.manual_seed(0)
    m = build_model("4-8-4-8-4-8", width_base=1)
    for bn in (x for x in m.modules() if isinstance(x, nn.BatchNorm2d)):
        assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)
    conv = m.stage2[0].conv1
    fan_out = conv.out_channels * 9
    assert abs(conv.weight.std().item() - (2 / fan_out) ** 0.5) < 0.1 * (2 / fan_out) ** 0.5
    x = torch.rand(3, 3, 32, 32)
    assert m(x).shape == (3, 10)


def test_width_base_shrinks_channels_only() -> None:
    a = build_model("5-10-5-10-5-10", width_base=1)
    b = build_model("5-10-5-10-5-10", width_base=16)
    assert [type(x) for x in a.modules()] == [type(x) for x in b.modules()]
    assert a.fc.in_features * 16 == b.fc.in_features
