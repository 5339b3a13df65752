"""Complexity: the closed form equals counts taken from the real module (hooks and torchprofile)."""

from __future__ import annotations

import time

import pytest
import torch
import torchprofile

from nares.models.count import count_module
from nares.spaces import wrn as complexity
from nares.spaces.wrn import Arch, all_archs, build_model, random_archs

# Values of the published design-space table (params, MACs) and PROTOCOL §1.
PUBLISHED = {
    "4-8-4-8-4-8": (23_354_842, 3_361_936_896),
    "5-10-5-10-5-10": (46_160_474, None),
}


@pytest.mark.parametrize("arch", list(PUBLISHED))
def test_published_values(arch: str) -> None:
    p, m = PUBLISHED[arch]
    assert complexity.params(arch) == p
    if m is not None:
        assert complexity.macs(arch) == m
    assert abs(complexity.macs("5-10-5-10-5-10") / 1e9 - 6.66) < 0.01


def test_space_spans_published_range() -> None:
    macs = [complexity.macs(a) for a in all_archs()]
    assert 3.3e9 < min(macs) < 3.4e9 and 38.7e9 < max(macs) < 38.9e9


_WALK_CASES = [(a, 1) for a in ["4-8-4-8-4-8", "5-10-5-10-5-10", "11-8-4-16-7-10", *map(str, random_archs(3, seed=11))]]
_WALK_CASES += [("4-8-4-8-4-8", 16), ("5-10-5-10-5-10", 16), ("4-16-5-8-4-10", 16)]


@pytest.mark.parametrize(("arch", "width_base"), _WALK_CASES)
def test_closed_form_matches_module_walk(arch: str, width_base: int) -> None:
    model = build_model(arch, width_base=width_base)
    assert count_module(model) == (complexity.params(arch, width_base), complexity.macs(arch, width_base))


@pytest.mark.parametrize("arch", ["4-8-4-8-4-8", "9-12-5-8-11-14"])
def test_closed_form_matches_torchprofile(arch: str) -> None:
    model = build_model(arch, width_base=2).eval()
    assert torchprofile.profile_macs(model, torch.zeros(1, 3, 32, 32)) == complexity.macs(arch, width_base=2)


def test_all_15625_in_seconds() -> None:
    complexity._counts.cache_clear()
    t0 = time.perf_counter()
    rows = [(complexity.params(a), complexity.macs(a)) for a in all_archs()]
    assert time.perf_counter() - t0 < 5.0
    assert len(rows) == 15_625 and all(p > 0 and m > 0 for p, m in rows)
    assert rows[all_archs().index(Arch(5, 10, 5, 10, 5, 10))][0] == 46_160_474
