"""The depth/width design ratios of PROTOCOL §8."""

from __future__ import annotations

from nares.spaces.wrn import Arch, stage_channels


def depth_share(arch: Arch) -> float:
    """ΣD / (ΣD + ΣW): the share of depth in the encoding."""
    return sum(arch.depths) / (sum(arch.depths) + sum(arch.widths))


def width_per_depth(arch: Arch, width_base: int = 16) -> float:
    """½ (C1/D1 + C2/D2): channels per block of the first two stages (Ci = width_base·2^(i-1)·Wi)."""
    c = stage_channels(arch, width_base)
    return 0.5 * (c[0] / arch.depth1 + c[1] / arch.depth2)
