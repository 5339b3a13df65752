"""The NAS-Bench-201 cell space: strings, the isomorphism classes (6,466), representatives, ids, neighbours,
encoding, and the closed-form complexity against the real module (hook walk and torchprofile)."""

from __future__ import annotations

import json
import random
from itertools import product

import pytest
import torch
import torchprofile

from nares.errors import ArchError
from nares.models.count import count_module
from nares.space_table import space_table
from nares.spaces import get_space
from nares.spaces.nb201 import OPS, SPACE, Cell, n_param_free, parse_cell, representatives, unique_form

ALL_CONV = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def cell(text: str) -> Cell:
    return parse_cell(text)


def test_registered_and_every_cell_round_trips() -> None:
    assert get_space("nb201") is SPACE and SPACE.size == 15625
    cells = list(SPACE.enumerate())
    assert len(cells) == len(set(cells)) == 15625
    for c in cells:
        text = SPACE.format(c)
        assert parse_cell(text) == c and parse_cell(list(c.ops)) == c and SPACE.code_of(text) == c.ops_code()
    assert str(cells[0]) == "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"


@pytest.mark.parametrize(("text", "message"), [
    ("|nor_conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|", "edge 1<-0: op 'nor_conv_5x5' is not one of"),
    ("|none~0|+|none~0|none~1|", "has 2 nodes, expected 3"),
    ("|none~0|+|none~0|+|none~0|none~1|none~2|", "node 2 has 1 input edges, expected 2"),
    ("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "edge 'none~1' of node 1 must come from node 0"),
    ("|none~0|+|none~0|none~1|+|none~0|none~2|none~1|", "edge 'none~2' of node 3 must come from node 1"),
    ("none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "node 1 is 'none~0|', expected |op~j|"),
])
def test_bad_strings_are_one_line_naming_the_fault(text: str, message: str) -> None:
    with pytest.raises(ArchError) as e:
        parse_cell(text)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_bad_values_of_other_types() -> None:
    for bad, message in ((("none",) * 5, "a cell has 6 edge ops"), ((1, 2, 3, 4, 5, 6), "ops must be op names"),
                         (3.5, "cannot read a NAS-Bench-201 cell")):
        with pytest.raises(ArchError, match=message):
            parse_cell(bad)


def test_class_counts_with_and_without_the_zero_rule() -> None:
    cells = list(SPACE.enumerate())
    assert len({unique_form(c) for c in cells}) == 6466 == len(representatives())
    assert len({unique_form(c, zero_rule=False) for c in cells}) == 12751


def test_a_none_edge_cuts_a_node_off() -> None:
    # node 1 is fed by `none`: whatever leaves it contributes nothing, so the op on 2<-1 and 3<-1 is irrelevant
    a = cell("|none~0|+|skip_connect~0|nor_conv_3x3~1|+|none~0|none~1|skip_connect~2|")
    b = cell("|none~0|+|skip_connect~0|none~1|+|none~0|nor_conv_1x1~1|skip_connect~2|")
    assert unique_form(a) == unique_form(b) == "#+#+#+0"
    assert SPACE.canonical(a) == SPACE.canonical(b)
    assert unique_form(a, zero_rule=False) != unique_form(b, zero_rule=False)


def test_two_skip_paths_are_the_same_cell() -> None:
    via_node_1 = cell("|skip_connect~0|+|none~0|none~1|+|none~0|skip_connect~1|none~2|")
    direct = cell("|skip_connect~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|")
    assert unique_form(via_node_1) == unique_form(direct) == "#+#+0"
    conv_then_skip = cell("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|skip_connect~1|none~2|")
    conv_direct = cell("|skip_connect~0|+|none~0|none~1|+|nor_conv_3x3~0|none~1|none~2|")
    assert unique_form(conv_then_skip) == unique_form(conv_direct) == "#+#+(0)@nor_conv_3x3"
    assert SPACE.canonical(conv_then_skip) == SPACE.canonical(conv_direct)


def test_a_cell_equal_to_a_smaller_one_maps_to_the_smaller() -> None:
    # node 1's conv feeds nothing (3<-1 and 2<-1 are none): the cell computes x, as the plain skip cell does
    dead_conv = cell("|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|")
    smaller = cell("|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|")
    assert SPACE.complexity(dead_conv, 16)[0] > SPACE.complexity(smaller, 16)[0]
    assert SPACE.canonical(dead_conv) == smaller == SPACE.canonical(smaller)
    assert SPACE.canonical(cell(ALL_CONV)) == cell(ALL_CONV)  # alone in its class


def test_representatives_are_the_cheapest_member_and_the_lowest_id() -> None:
    table = space_table(space=SPACE).to_pydict()
    assert table["arch_id"] == list(range(1, 15626))
    reps = table["representative_id"]
    assert len(set(reps)) == 6466 and sum(r == a for r, a in zip(reps, table["arch_id"], strict=True)) == 6466
    assert all(r <= a for r, a in zip(reps, table["arch_id"], strict=True))
    macs = table["macs"]
    assert all(macs[r - 1] <= m for r, m in zip(reps, macs, strict=True))
    assert macs == sorted(macs)  # default ids: ascending MACs
    by_rep: dict[int, set[str]] = {}
    for a, r in zip(table["arch"], reps, strict=True):
        by_rep.setdefault(r, set()).add(unique_form(cell(a)))
    assert all(len(forms) == 1 for forms in by_rep.values())  # one class per representative
    assert {SPACE.canonical(c) for c in representatives()} == set(representatives())


def test_neighbours_and_encoding() -> None:
    c = cell("|nor_conv_1x1~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|")
    nbrs = SPACE.neighbours(c)
    assert len(nbrs) == len(set(nbrs)) == 24 and c not in nbrs
    assert all(sum(x != y for x, y in zip(n.ops, c.ops, strict=True)) == 1 for n in nbrs)
    enc = SPACE.encode(c)
    assert enc.shape == (30,) and enc.sum() == 6
    assert [int(i) for i in enc.reshape(6, 5).argmax(1)] == [OPS.index(op) for op in c.ops]
    assert n_param_free(c) == 4


def test_reference_parameter_counts_at_full_size() -> None:
    refs = SPACE.references
    assert SPACE.complexity(refs["all-nor_conv_3x3"], 16)[0] == 1_531_546  # PROTOCOL §7.1: 1.53 M
    assert SPACE.complexity(refs["parameter-free"], 16)[0] == 73_306  # 0.07 M
    assert SPACE.complexity(refs["resnet"], 16)[0] == 559_386
    assert count_module(SPACE.build_model(refs["all-nor_conv_3x3"], 16)) == SPACE.complexity(refs["all-nor_conv_3x3"], 16)


_SAMPLE = [*random.Random(0).sample(list(product(OPS, repeat=6)), 10)]


@pytest.mark.parametrize("ops", _SAMPLE, ids=lambda ops: str(Cell(ops)))
def test_closed_form_equals_the_module_walk(ops: tuple[str, ...]) -> None:
    c = Cell(ops)
    model = SPACE.build_model(c, 4)
    assert count_module(model) == SPACE.complexity(c, 4)
    assert sum(p.numel() for p in model.parameters()) == SPACE.complexity(c, 4)[0]


@pytest.mark.parametrize("name", ["all-nor_conv_3x3", "resnet", "parameter-free"])
def test_closed_form_equals_torchprofile(name: str) -> None:
    c = SPACE.references[name]
    model = SPACE.build_model(c, 2).eval()
    assert torchprofile.profile_macs(model, torch.zeros(1, 3, 32, 32)) == SPACE.complexity(c, 2)[1]
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_cell_output_is_zero_when_node_3_has_no_live_input() -> None:
    from nares.models.nb201 import Cell as CellModule

    m = CellModule(cell("|nor_conv_3x3~0|+|skip_connect~0|nor_conv_3x3~1|+|none~0|none~1|none~2|").ops, 4)
    assert torch.count_nonzero(m(torch.randn(2, 4, 8, 8))) == 0


def _meta(order: list[Cell]) -> dict:
    position = {c: i for i, c in enumerate(order)}
    ids = {str(i): {"nb201-string": str(c), "isomorph": str(position[SPACE.canonical(c)])} for i, c in enumerate(order)}
    return {"ids": ids, "epsilons": {"fgsm": [0.1, 8]}}


def test_nb201_index_order_is_imported_from_meta_json(tmp_path) -> None:
    order = list(SPACE.enumerate())
    random.Random(3).shuffle(order)
    path = tmp_path / "meta.json"
    path.write_text(json.dumps(_meta(order)))
    index = SPACE.index(path)
    assert index.arch_of(1) == order[0] and index.id_of(order[123]) == 124
    table = space_table(index, space=SPACE).to_pydict()
    assert table["arch"][:3] == [str(c) for c in order[:3]]
    meta = _meta(order)
    wrong = next(k for k, v in meta["ids"].items() if v["isomorph"] != k)
    meta["ids"][wrong]["isomorph"] = "0" if SPACE.canonical(order[0]) != SPACE.canonical(order[int(wrong)]) else "1"
    path.write_text(json.dumps(meta))
    with pytest.raises(ArchError, match=f"id {wrong} .* is marked isomorphic to"):
        SPACE.index(path)
    path.write_text(json.dumps({"ids": {"0": {"nb201-string": ALL_CONV}}}))
    with pytest.raises(ArchError, match="isomorph"):
        SPACE.index(path)


def test_cells_per_stage_setting() -> None:
    from nares.config import load_preset
    from nares.errors import ConfigError
    from nares.spaces import space_for

    one = space_for(load_preset("nb201-tiny"))
    assert one.cells_per_stage == 1 and space_for(load_preset("nb201-full")) is SPACE
    c = SPACE.references["resnet"]
    assert count_module(one.build_model(c, 4)) == one.complexity(c, 4) != SPACE.complexity(c, 4)
    assert one.canonical(cell(ALL_CONV)) == SPACE.canonical(cell(ALL_CONV))
    for section, message in (({"cells_per_stage": 0}, "cells_per_stage is 0; expected a positive integer"),
                             ({"cells": 2}, "cells is not a setting")):
        with pytest.raises(ConfigError, match=message):
            SPACE.configure({"name": "nb201", **section})


def test_sweep_selection_trains_only_representatives() -> None:
    from nares.sweep.selection import select_archs

    pairs = select_archs("all", SPACE)
    assert len(pairs) == 6466 and all(SPACE.canonical(a) == a for _, a in pairs)
    dead_conv = "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"
    smaller = "|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"
    assert select_archs(f"list:{dead_conv},{smaller}", SPACE) == [(SPACE.index().id_of(smaller), cell(smaller))]


def test_run_folders_are_safe_distinct_names() -> None:
    from nares.sweep.paths import SAFE_NAME, run_name

    names = {run_name(SPACE.format(c)) for c in SPACE.enumerate()}
    assert len(names) == 15625 and all(SAFE_NAME.fullmatch(n) for n in names)
    assert run_name("5-10-5-10-5-10") == "5-10-5-10-5-10"  # WRN run folders keep their names
    assert run_name(ALL_CONV).startswith("nor_conv_3x3_0_nor_conv_3x3_0_nor_conv_3x3_1_")
