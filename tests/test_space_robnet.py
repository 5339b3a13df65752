"""The RobNets space: strings, parse errors, sampling, neighbours, density/convs/budget, variants, the network's depth
(`cells`), and the closed-form complexity against the real modules (hook walk and torchprofile)."""

from __future__ import annotations

import hashlib
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
import torchprofile

from nares.config import load_preset
from nares.errors import ArchError, ConfigError
from nares.models.count import count_module
from nares.spaces import space_for
from nares.spaces.robnet import (
    BITS,
    DIRECT,
    MIN_CELLS,
    N_CELLS,
    ROBNET_FREE,
    ROBNET_LARGE,
    SPACE,
    RobNetArch,
    RobNetSpace,
    budget,
    conv_counts,
    density,
    identity_count,
    reduction_cells,
)

pytestmark = pytest.mark.usefixtures("one_thread")

FREE = RobNetSpace("cell_free")
SPACE5 = RobNetSpace("cell_based", cells=5)  # the smallest network: normal, reduction, normal, reduction, normal
FREE5 = RobNetSpace("cell_free", cells=5)
LARGE = SPACE.parse(ROBNET_LARGE)
# RobNets architecture_code.py, robnet_large_v1 and the first cell of robnet_free, as lists of edge codes
LARGE_CODES = ["11", "11", "11", "11", "11", "01", "11", "01", "10", "11", "01", "01", "01", "11"]
FREE_CELL0_CODES = ["11", "10", "11", "11", "10", "11", "01", "01", "10", "11", "11", "00", "11", "01"]
ZERO = RobNetArch((0,))
NO_INPUT_0 = "00-00-00-00-11-00-00-11-11-00-00-11-11-11"  # node 0 all zero; inputs read by no edge


def cell(codes: list[str]) -> str:
    return "-".join(codes)


def convs_on(edges: range | list[int], identity: bool = False) -> str:
    """A cell string with a sep conv on the given edges (and an identity on every edge when `identity`)."""
    return cell([("1" if identity else "0") + ("1" if e in edges else "0") for e in range(14)])


def xor_bits(a: RobNetArch, b: RobNetArch) -> int:
    return sum((x ^ y).bit_count() for x, y in zip(a.cells, b.cells, strict=True))


# -- strings --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("space", [SPACE, FREE, SPACE5, FREE5], ids=["cell_based", "cell_free", "cell_based-5",
                                                                   "cell_free-5"])
def test_string_round_trip_on_a_seeded_sample(space: RobNetSpace) -> None:
    archs = space.sample(1000, seed=7)
    for a in archs:
        s = space.format(a)
        assert space.parse(s) == a and space.parse(a) is a
        assert space.parse(list(a.bits())) == a and space.parse(space.encode(a)) == a
    cells = space.format(archs[0]).split("/")
    assert len(cells) == space.n_alpha and all(len(c.split("-")) == 14 for c in cells)


def test_string_form_and_published_codes() -> None:
    assert str(LARGE) == SPACE.format(LARGE) == ROBNET_LARGE
    assert SPACE.parse(LARGE_CODES) == LARGE and SPACE.parse([LARGE_CODES]) == LARGE
    assert SPACE.parse("00-00-00-00-00-00-00-00-00-00-00-00-00-01").cells == (1,)  # last edge's conv bit: bit 0
    assert SPACE.parse("10-00-00-00-00-00-00-00-00-00-00-00-00-00").cells == (1 << 27,)
    assert SPACE.parse(" " + ROBNET_LARGE + " ") == LARGE
    free = FREE.parse(ROBNET_FREE)
    assert len(free.cells) == N_CELLS and free.cells[0] == SPACE.parse(FREE_CELL0_CODES).cells[0]
    assert FREE.parse([FREE_CELL0_CODES] + [cell(FREE_CELL0_CODES)] * 19).cells == free.cells[:1] * 20
    assert FREE.parse(np.stack([SPACE.encode(LARGE)] * 20)) == RobNetArch(LARGE.cells * 20)
    assert FREE.parse(ROBNET_FREE).bits()[:4] == (1, 1, 1, 0)


@pytest.mark.parametrize(("value", "fragment"), [
    ("11-11-11", "has 3 edge codes; expected 14 codes of 00/01/10/11"),
    (ROBNET_LARGE.replace("10", "12", 1), "edge 8 is '12'"),
    (ROBNET_LARGE.replace("-", "_"), "has 1 edge codes"),
    ("/".join([ROBNET_LARGE] * 3), "has 3 cells; expected 1 (cell-based) or 20 (cell-free)"),
    ("/".join([ROBNET_LARGE] * 19 + ["11-11"]), "of cell 19 has 2 edge codes"),
    ([1, 0] * 13 + [1], "has 27 bits; expected 28 (one cell) or 560 (20 cells)"),
    ([1, 0] * 13 + [1, 2], "bit 27 of robnet arch"),
    ([0.5] * 28, "bit 0 of robnet arch"),
    (LARGE_CODES[:13], "has 13 items"),
    ([*LARGE_CODES[:13], "1"], "edge 13 is '1'"),
    ([LARGE_CODES] * 3, "has 3 items"),
    (3.5, "cannot read a RobNet architecture from 3.5 (type float)"),
    (None, "cannot read a RobNet architecture from None (type NoneType)"),
    (b"11-11", "(type bytes)"),
    ("x" * 500, "(500 chars)"),
])
def test_parse_errors_are_one_line(value: object, fragment: str) -> None:
    with pytest.raises(ArchError) as exc:
        SPACE.parse(value)
    msg = str(exc.value)
    assert fragment in msg and "\n" not in msg and len(msg) < 300


def test_arch_rejects_bad_codes() -> None:
    for cells in [(), (1 << 28,), (-1,), (0,) * 2, (0,) * 4, ("0",)]:
        with pytest.raises(ArchError):
            RobNetArch(cells)  # type: ignore[arg-type]


# -- sampling and neighbours ----------------------------------------------------------------------------------
def test_sample_reproducible_distinct_uniform_and_never_enumerates() -> None:
    a = SPACE.sample(4000, seed=3)
    assert a == SPACE.sample(4000, seed=3) and a != SPACE.sample(4000, seed=4)
    assert len(set(a)) == 4000 and all(x.cell_based for x in a)
    freq = np.stack([SPACE.encode(x) for x in a]).mean(axis=0)
    assert freq.shape == (BITS,) and np.all(np.abs(freq - 0.5) < 0.04)  # 5 σ of a fair bit over 4,000 draws
    excluded = a[:100]
    b = SPACE.sample(200, seed=3, exclude=[str(x) for x in excluded])
    assert not set(b) & set(excluded)
    f = FREE.sample(300, seed=1)
    bits = np.stack([FREE.encode(x) for x in f])
    assert bits.shape == (300, BITS * N_CELLS) and abs(bits.mean() - 0.5) < 0.01 and len(set(f)) == 300
    assert SPACE.size is None and FREE.size is None
    with pytest.raises(ArchError, match="too large to enumerate"):
        SPACE.enumerate()
    with pytest.raises(ArchError, match="cannot sample"):
        SPACE.sample(2**28 + 1, seed=0)


def test_neighbours_flip_exactly_one_bit() -> None:
    for space, arch in ((SPACE, LARGE), (FREE, FREE.parse(ROBNET_FREE))):
        nbrs = space.neighbours(arch)
        assert len(nbrs) == len(set(nbrs)) == BITS * space.n_alpha
        assert all(xor_bits(arch, n) == 1 for n in nbrs)
    assert SPACE.neighbours(ZERO)[0] == SPACE.parse("10" + "-00" * 13)


def test_encode_is_the_bits_and_variants_refuse_each_other() -> None:
    e = SPACE.encode(LARGE)
    assert e.dtype == np.float32 and e.tolist() == [int(ch) for ch in ROBNET_LARGE.replace("-", "")]
    assert FREE.encode(FREE.parse(ROBNET_FREE)).shape == (560,)
    with pytest.raises(ArchError, match="has 20 cell codes; this cell_based space's archs have 1"):
        SPACE.encode(FREE.references["all-ops"])
    with pytest.raises(ArchError, match="has 1 cell codes; this cell_free space's archs have 20"):
        FREE.neighbours(LARGE)


# -- density, convolutions, budgets ---------------------------------------------------------------------------
def test_density_conv_counts_and_budget_by_hand() -> None:
    assert DIRECT == (1, 4, 8, 13)
    # RobNet-large: 22 bits set, 13 convs (edges 0-7, 9-13 but not 8), identities on 9 edges
    assert density(LARGE) == 22 / 28 and conv_counts(LARGE) == (3, 10) and identity_count(LARGE) == 9
    assert budget(LARGE) == "large"
    assert density(ZERO) == 0.0 and conv_counts(ZERO) == (0, 0) and budget(ZERO) == "small"
    assert conv_counts(convs_on([1, 4, 8, 13])) == (4, 0) and conv_counts(convs_on([0, 2, 3])) == (0, 3)
    cases = {6: ((2, 4), "small"), 7: ((2, 5), "small"), 8: ((2, 6), "medium"), 10: ((3, 7), "medium"),
             11: ((3, 8), "large"), 14: ((4, 10), "large")}
    for n, (counts, b) in cases.items():
        s = convs_on(range(n))
        assert conv_counts(s) == counts and budget(s) == b, n
        assert budget(convs_on(range(n), identity=True)) == b  # identities are not convolutions
    assert density(convs_on(range(7), identity=True)) == 21 / 28
    free = RobNetArch(LARGE.cells * 20)
    assert conv_counts(free) == (60, 200) and density(free) == 22 / 28 and budget(free) == "large"


def test_cell_free_budget_bins_the_mean_per_cell() -> None:
    def free(counts: list[int]) -> RobNetArch:
        return FREE.parse("/".join(convs_on(range(n)) for n in counts))

    assert budget(free([7] * 10 + [8] * 10)) == "medium"  # mean 7.5
    assert budget(free([7] * 11 + [8] * 9)) == "small"  # 7.45
    assert budget(free([10] * 10 + [11] * 10)) == "medium"  # 10.5
    assert budget(free([10] * 9 + [11] * 11)) == "large"  # 10.55
    assert sum(conv_counts(free([7] * 10 + [8] * 10))) == 150


def test_coords_and_schema() -> None:
    names = [c for c, _ in SPACE.coord_schema]
    assert SPACE.coords(LARGE) == {"density": 22 / 28, "direct_convs": 3, "skip_convs": 10, "identities": 9,
                                   "budget": 2}
    assert list(SPACE.coords(LARGE)) == names == [c for c, _ in FREE.coord_schema]
    assert FREE.coords(FREE.parse(ROBNET_FREE))["budget"] in (0, 1, 2)


# -- variants, references ------------------------------------------------------------------------------------
def test_configure_variants_cells_and_pickling() -> None:
    assert SPACE.configure({"name": "robnet"}) is SPACE and SPACE.variant == "cell_based" and SPACE.n_cells == 20
    assert SPACE.configure({"name": "robnet", "variant": "cell_based", "cells": 20}) is SPACE
    free = SPACE.configure({"name": "robnet", "variant": "cell_free"})
    assert free.variant == "cell_free" and free.n_alpha == 20 and free.configure({"variant": "cell_free"}) is free
    assert pickle.loads(pickle.dumps(free)).variant == "cell_free"
    small = free.configure({"variant": "cell_free", "cells": 8})
    assert (small.variant, small.n_cells, small.n_alpha) == ("cell_free", 8, 8) and small.configure(
        {"variant": "cell_free", "cells": 8}) is small
    back = pickle.loads(pickle.dumps(small))
    assert (back.variant, back.n_cells) == ("cell_free", 8) and back.sample(3, 1) == small.sample(3, 1)
    assert SPACE.configure({"cells": 5}).n_alpha == 1 and repr(FREE5).startswith("<search space 'robnet' (cell_free, 5")
    for section, start in [({"name": "robnet", "depths": [4]}, "depths is not a setting"),
                           ({"name": "robnet", "depth": 5}, "depth is not a setting (the keys of space 'robnet' are "
                                                            "name, variant, cells;"),
                           ({"variant": "free"}, "variant is 'free'; expected one of ['cell_based', 'cell_free']"),
                           ({"variant": 1}, "variant is 1;"),
                           ({"cells": 2}, "cells is 2; expected an integer of at least 5 (a normal cell before, "
                                          "between and after the reduction cells"),
                           ({"cells": 4}, "cells is 4; expected an integer of at least 5"),
                           ({"cells": "8"}, "cells is '8'; expected an integer"),
                           ({"cells": 8.0}, "cells is 8.0; expected an integer"),
                           ({"cells": True}, "cells is True; expected an integer"),
                           ({"cells": None}, "cells is None; expected an integer")]:
        with pytest.raises(ConfigError) as exc:
            SPACE.configure(section)
        assert str(exc.value).startswith(start) and "\n" not in str(exc.value)
    with pytest.raises(ConfigError, match=r"^space\.cells is 2; expected an integer of at least 5 "):
        space_for({"space": {"name": "robnet", "variant": "cell_free", "cells": 2}})


def test_presets_cells() -> None:
    full, tiny = space_for(load_preset("robnet-full")), space_for(load_preset("robnet-tiny"))
    assert full is SPACE  # RobNets' network: 20 cells, the default
    assert (tiny.variant, tiny.n_cells) == ("cell_based", MIN_CELLS)  # the smallest network with every stage


# -- the network's depth ---------------------------------------------------------------------------------------
def test_reduction_cells_generalise_robnets_rule() -> None:
    assert reduction_cells() == reduction_cells(20) == (6, 13)  # RobNets' CIFAR network
    assert reduction_cells(5) == (1, 3) and reduction_cells(8) == (2, 5)
    for n in range(MIN_CELLS, 80):  # a normal cell before, between and after the two reductions
        r1, r2 = reduction_cells(n)
        assert r1 > 0 and r1 + 1 < r2 < n - 1, n
    assert reduction_cells(MIN_CELLS - 1) == (1, 2)  # 4 cells: no normal cell between the reductions
    for space, strides in ((SPACE5, [1, 2, 1, 2, 1]), (SPACE, [2 if i in (6, 13) else 1 for i in range(20)]),
                           (RobNetSpace("cell_free", 8), [1, 1, 2, 1, 1, 2, 1, 1])):
        arch = space.references["all-ops"]
        assert [c.stride for c in space.build_model(arch, 2).cells] == strides


def test_cell_based_archs_do_not_depend_on_the_depth() -> None:
    assert SPACE5.sample(200, seed=5) == SPACE.sample(200, seed=5)
    assert SPACE5.parse(ROBNET_LARGE) == LARGE and SPACE5.references == SPACE.references
    assert SPACE5.neighbours(LARGE) == SPACE.neighbours(LARGE)
    assert SPACE5.complexity(LARGE, 36) != SPACE.complexity(LARGE, 36)  # the same cell in a shallower network


def test_seeded_samples_at_20_cells_are_unchanged() -> None:
    """The archs (so the sweep ids) of seeded samples of RobNets' 20-cell network, as before `cells` existed."""
    assert [str(a) for a in SPACE.sample(3, seed=5)] == [
        "10-01-11-11-01-11-01-10-01-11-11-00-01-00", "01-00-00-01-01-10-01-00-11-01-10-00-00-11",
        "10-11-11-01-11-10-01-01-11-00-00-00-10-01"]
    for space, digest in ((SPACE, "9a08de4460dfa3ef"), (FREE, "bcc1160c6cd87a4a")):
        text = "\n".join(space.format(a) for a in space.sample(50, seed=5))
        assert hashlib.sha256(text.encode()).hexdigest()[:16] == digest, space.variant
    assert [SPACE.complexity(a, 36) for a in SPACE.sample(3, seed=11)] == [
        (5223574, 791513280), (4807126, 730134720), (4443382, 674119872)]
    assert [FREE.complexity(a, 36) for a in FREE.sample(3, seed=11)] == [
        (4831678, 706762944), (4277782, 687040704), (4448998, 657061056)]


def test_cell_free_archs_hold_the_configured_number_of_cells() -> None:
    five = "/".join([ROBNET_LARGE] * 5)
    arch = RobNetArch(LARGE.cells * 5)
    assert FREE5.parse(five) == arch and FREE5.format(arch) == five and FREE5.parse(list(arch.bits())) == arch
    assert FREE5.parse(np.stack([SPACE.encode(LARGE)] * 5)) == arch and FREE5.parse([LARGE_CODES] * 5) == arch
    assert FREE5.encode(arch).shape == (5 * BITS,) and len(FREE5.neighbours(arch)) == 5 * BITS
    assert all(len(a.cells) == 5 for a in FREE5.sample(20, seed=0)) and "robnet-free" not in FREE5.references
    assert all(len(a.cells) == 5 for a in FREE5.references.values())
    assert density(arch) == 22 / 28 and conv_counts(arch) == (15, 50) and budget(arch) == "large"
    # 14 and 28 cells: a list of 14 cell strings is no cell of 14 edge codes, 28 cell strings no 28 bits
    assert RobNetSpace("cell_free", 14).parse([ROBNET_LARGE] * 14) == RobNetArch(LARGE.cells * 14)
    assert RobNetSpace("cell_free", 28).parse([ROBNET_LARGE] * 28) == RobNetArch(LARGE.cells * 28)
    for space, value, fragment in [
        (FREE5, ROBNET_FREE, "has 20 cells; expected 1 (cell-based) or 5 (cell-free) joined by '/'"),
        (FREE, five, "has 5 cells; expected 1 (cell-based) or 20 (cell-free) joined by '/'"),
        (SPACE5, five + "/" + ROBNET_LARGE, "has 6 cells; expected 1 (cell-based) or 5 (cell-free)"),
        (FREE5, [1, 0] * (10 * 28), "has 560 bits; expected 28 (one cell) or 140 (5 cells)"),
        (FREE5, [ROBNET_LARGE] * 20, "has 20 items; expected 28 or 140 bits, 14 edge codes, or 1 or 5 cells"),
        (FREE5, FREE.parse(ROBNET_FREE), "has 20 cell codes; expected 1 (cell-based) or 5 (cell-free"),
        (FREE, arch, "has 5 cell codes; expected 1 (cell-based) or 20 (cell-free"),
        (FREE5, "/".join([ROBNET_LARGE] * 4 + ["11-11"]), "of cell 4 has 2 edge codes"),
    ]:
        with pytest.raises(ArchError) as exc:
            space.parse(value)
        msg = str(exc.value)
        assert fragment in msg and "\n" not in msg and len(msg) < 300, msg
    with pytest.raises(ArchError, match="has 5 cell codes; expected 1 .cell-based. or 20"):
        FREE.encode(arch)
    with pytest.raises(ArchError, match="has 5 cell codes; this cell_based space's archs have 1"):
        SPACE5.neighbours(arch)


def test_references() -> None:
    refs = SPACE.references
    assert refs["robnet-large"] == LARGE and refs["all-ops"].cells == ((1 << 28) - 1,)
    assert conv_counts(refs["all-conv"]) == (4, 10) and identity_count(refs["all-conv"]) == 0
    assert conv_counts(refs["all-identity"]) == (0, 0) and density(refs["all-identity"]) == 0.5
    assert FREE.references["robnet-free"] == FREE.parse(ROBNET_FREE)
    assert all(len(a.cells) == 20 for a in FREE.references.values())


# -- complexity against the real modules -----------------------------------------------------------------------
FREE8 = RobNetSpace("cell_free", 8)
_WALK = [(SPACE, a) for a in SPACE.sample(8, seed=5)] + [(FREE, a) for a in FREE.sample(8, seed=5)]
_WALK += [(SPACE, ZERO), (SPACE, SPACE.parse(NO_INPUT_0)), (SPACE, SPACE.references["all-ops"]),
          (FREE, FREE.parse(ROBNET_FREE))]
_WALK += [(SPACE5, a) for a in SPACE5.sample(6, seed=5)] + [(FREE5, a) for a in FREE5.sample(6, seed=5)]
_WALK += [(FREE8, a) for a in FREE8.sample(3, seed=5)]
_WALK += [(SPACE5, ZERO), (SPACE5, SPACE5.parse(NO_INPUT_0)), (SPACE5, SPACE5.references["all-ops"]),
          (FREE5, FREE5.references["all-ops"])]


@pytest.mark.parametrize(("space", "arch"), _WALK,
                         ids=[f"{s.variant}-{s.n_cells}-{i}" for i, (s, _) in enumerate(_WALK)])
def test_closed_form_matches_module_walk(space: RobNetSpace, arch: RobNetArch) -> None:
    assert count_module(space.build_model(arch, 2)) == space.complexity(arch, 2)


_PROFILE = [(SPACE, LARGE), (FREE, FREE.sample(1, seed=9)[0]), (SPACE5, LARGE), (FREE5, FREE5.sample(1, seed=9)[0]),
            (FREE8, FREE8.sample(1, seed=9)[0])]


@pytest.mark.parametrize(("space", "arch"), _PROFILE,
                         ids=["robnet-large", "cell_free-sample", "robnet-large-5", "cell_free-5", "cell_free-8"])
def test_closed_form_matches_torchprofile(space: RobNetSpace, arch: RobNetArch) -> None:
    model = space.build_model(arch, 2).eval()
    assert torchprofile.profile_macs(model, torch.zeros(1, 3, 32, 32)) == space.complexity(arch, 2)[1]


def test_full_size_robnet_large_about_6_9m_params() -> None:
    assert SPACE.default_scale == 36
    params, macs = SPACE.complexity(LARGE, 36)
    assert (params, macs) == (6_942_070, 1_042_391_232) and abs(params / 6.89e6 - 1) < 0.01
    assert sum(p.numel() for p in SPACE.build_model(LARGE, 36).parameters()) == params
    assert SPACE.complexity(SPACE.references["all-ops"], 36)[0] == 7_411_222
    assert FREE.complexity(FREE.parse(ROBNET_FREE), 36)[0] == 5_513_806
    params5 = SPACE5.complexity(LARGE, 36)[0]
    assert sum(p.numel() for p in SPACE5.build_model(LARGE, 36).parameters()) == params5 < params / 3


def test_forward_and_backward_shapes() -> None:
    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32)
    for space, arch, classes in ((SPACE, LARGE, 10), (FREE, FREE.sample(1, seed=2)[0], 100),
                                 (FREE5, FREE5.sample(1, seed=2)[0], 10)):
        model = space.build_model(arch, 2, num_classes=classes)
        out = model(x)
        assert out.shape == (2, classes) and torch.isfinite(out).all()
        out.sum().backward()
        assert model.stem[0].weight.grad is not None and model.stem[0].weight.grad.abs().sum() > 0
    # no edge reads a cell input: the network ignores its image (a valid, degenerate member of the space)
    model = SPACE.build_model(SPACE.parse(NO_INPUT_0), 2).eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(torch.zeros_like(x)))


def test_space_module_imports_no_torch() -> None:
    code = "import sys, nares.spaces.robnet; assert 'torch' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_sweep_selection_of_a_space_too_large_to_enumerate() -> None:
    from nares.spaces.base import SpaceIndex
    from nares.sweep.selection import SweepError, select_archs

    ten = select_archs("sample:10@3", SPACE)
    assert [i for i, _ in ten] == list(range(1, 11)) and [a for _, a in ten] == SPACE.sample(10, 3)
    assert select_archs("sample:25@3", SPACE)[:10] == ten  # a larger draw keeps the ids of a smaller one
    assert select_archs("sample:4", SPACE) == select_archs("sample:4@0", SPACE) != select_archs("sample:4@1", SPACE)
    for bad, message in (("all", "too large to enumerate: select sample:N"), ("ids:1-3", "select sample:N"),
                         ("sample:0", "sample size 0 is outside"), ("sample:x", "bad sample 'x'")):
        with pytest.raises(SweepError, match=message):
            select_archs(bad, SPACE)
    with pytest.raises(ArchError, match="not enumerable: its arch ids are those of a sample"):
        SPACE.index()
    index = SpaceIndex.from_mapping(SPACE, {i: a for i, a in ten})  # an id map, as a release keeps it
    assert select_archs("ids:2-3", SPACE, index) == ten[1:3]
    with pytest.raises(ArchError, match="must name distinct architectures"):
        SpaceIndex(SPACE, [ten[0][1], ten[0][1]])
