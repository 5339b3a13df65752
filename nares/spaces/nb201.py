"""The NAS-Bench-201 cell space (PROTOCOL §7.1), registered as "nb201": `Cell`, the NB201 string, the isomorphism
canonicaliser (6,466 classes), neighbours, one-hot encoding, exact params/MACs and the model builder.

Cells are enumerated in lexicographic order of their six ops (edge order of the string, op order of `OPS`); the
representative of a class is its cheapest member (least MACs, then parameters, then enumeration order). Default arch_ids are the base rule (ascending MACs
at C = 16, then parameters, then enumeration order); NB201's own 0-based index order is imported from the
robustness dataset's `meta.json` (`index(path)`: arch_id = NB201 index + 1).

Imports only the standard library, numpy, pyarrow and `nares.spaces.base`/`nares.errors`; torch is imported by
`build_model` alone (through `nares.models.nb201`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from nares.errors import ArchError, ConfigError, shown
from nares.spaces.base import SearchSpace, SpaceIndex

OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
PARAM_FREE: frozenset[str] = frozenset({"none", "skip_connect", "avg_pool_3x3"})
EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))  # (node, input) in string order
COORD_COLUMNS: tuple[str, ...] = tuple(f"edge_{t}_{s}" for t, s in EDGES)  # edge_1_0 … edge_3_2
N_CELLS = len(OPS) ** len(EDGES)  # 15,625
N_UNIQUE = 6466
CELLS_PER_STAGE = 5
IMAGE_SIZE = 32
NUM_CLASSES = 10


@dataclass(frozen=True, order=True, slots=True)
class Cell:
    """One NB201 cell: the op of each of the six edges, in the order of the string (1←0, 2←0, 2←1, 3←0, 3←1, 3←2)."""

    ops: tuple[str, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.ops, tuple) or len(self.ops) != len(EDGES):
            raise ArchError(f"a cell has {len(EDGES)} edge ops, got {shown(self.ops)}")
        for (t, s), op in zip(EDGES, self.ops, strict=True):
            if op not in OPS:
                raise ArchError(f"edge {t}<-{s}: op {shown(op)} is not one of {list(OPS)}")

    def ops_code(self) -> int:
        """The position of this cell in enumeration order (base-5 digits = op indices, edge 1←0 first)."""
        code = 0
        for op in self.ops:
            code = code * len(OPS) + OPS.index(op)
        return code

    def __str__(self) -> str:
        o = self.ops
        return f"|{o[0]}~0|+|{o[1]}~0|{o[2]}~1|+|{o[3]}~0|{o[4]}~1|{o[5]}~2|"


def parse_cell(value: Any) -> Cell:
    """A `Cell` from itself, its NB201 string `|op~0|+|op~0|op~1|+|op~0|op~1|op~2|` or a sequence of six op names;
    a bad value is one `ArchError` line (unknown op, wrong node structure, wrong edge index)."""
    if isinstance(value, Cell):
        return value
    if isinstance(value, str):
        text = value.strip()
        nodes = text.split("+")
        if len(nodes) != 3:
            raise ArchError(f"cell string {shown(value)} has {len(nodes)} nodes, expected 3 joined by '+' "
                            "(|op~0|+|op~0|op~1|+|op~0|op~1|op~2|)")
        ops: list[str] = []
        for node, part in enumerate(nodes, 1):
            if not (part.startswith("|") and part.endswith("|") and len(part) > 2):
                raise ArchError(f"cell string {shown(value)}: node {node} is {shown(part)}, expected |op~j|…|")
            edges = part[1:-1].split("|")
            if len(edges) != node:
                raise ArchError(f"cell string {shown(value)}: node {node} has {len(edges)} input edges, "
                                f"expected {node}")
            for j, edge in enumerate(edges):
                op, sep, src = edge.rpartition("~")
                if not sep or src != str(j):
                    raise ArchError(f"cell string {shown(value)}: edge {shown(edge)} of node {node} must come "
                                    f"from node {j} (written {OPS[3]}~{j})")
                ops.append(op)
        return Cell(tuple(ops))
    if isinstance(value, Sequence) and not isinstance(value, bytes):
        if not all(isinstance(v, str) for v in value):
            raise ArchError(f"cell {shown(tuple(value))}: ops must be op names {list(OPS)}")
        return Cell(tuple(value))
    raise ArchError(f"cannot read a NAS-Bench-201 cell from {shown(value)} (type {type(value).__name__})")


def unique_form(cell: Cell, zero_rule: bool = True) -> str:
    """NB201's canonical form with zero handling (its `to_unique_str(consider_zero=True)`): a `none` edge, or an
    edge leaving a node whose form is the zero mark `#`, contributes `#`; `skip_connect` passes its input's form;
    another op contributes `(input form)@op`; a node's form is the sorted `+`-join of its contributions. Only a
    single-input node can itself be `#` (node 1 fed by `none`): a node of several zero contributions is `#+#`, as
    in NB201's code, which is what gives exactly 6,466 classes. `zero_rule=False`: `none` is an op like the others
    (12,751 classes)."""
    forms = ["0", "", "", ""]
    contributions: list[list[str]] = [[], [], [], []]
    for (t, s), op in zip(EDGES, cell.ops, strict=True):
        if zero_rule and (op == "none" or forms[s] == "#"):
            term = "#"
        elif op == "skip_connect":
            term = forms[s]
        else:
            term = f"({forms[s]})@{op}"
        contributions[t].append(term)
        if len(contributions[t]) == t:
            forms[t] = "+".join(sorted(contributions[t]))
    return forms[3]


@cache
def _classes() -> tuple[dict[Cell, Cell], tuple[Cell, ...]]:
    """The representative of every cell, and the representatives in enumeration order. A class's representative
    is its cheapest member: least MACs at C = 16, then fewest parameters, then first in enumeration order (so it
    is also the member with the lowest default arch_id)."""
    best: dict[str, tuple[tuple[int, int, int], Cell]] = {}
    forms: dict[Cell, str] = {}
    for code, cell in enumerate(_enumerate()):
        params, macs = _counts(cell, 16)
        form = forms[cell] = unique_form(cell)
        key = (macs, params, code)
        if form not in best or key < best[form][0]:
            best[form] = (key, cell)
    rep = {cell: best[form][1] for cell, form in forms.items()}
    return rep, tuple(sorted({v for _, v in best.values()}, key=lambda c: c.ops_code()))


def _enumerate() -> Iterator[Cell]:
    return (Cell(ops) for ops in product(OPS, repeat=len(EDGES)))


def representatives() -> tuple[Cell, ...]:
    """The 6,466 representatives, in enumeration order."""
    return _classes()[1]


def n_param_free(cell: Cell) -> int:
    """The number of parameter-free edges (`none`, `skip_connect`, `avg_pool_3x3`)."""
    return sum(op in PARAM_FREE for op in cell.ops)


# -- complexity in closed form (the modules of nares.models.nb201, torchprofile convention) -------------------
@cache
def _counts(cell: Cell, channels: int, cells_per_stage: int = CELLS_PER_STAGE) -> tuple[int, int]:
    c, hw = channels, IMAGE_SIZE
    params, macs = 27 * c + 2 * c, 27 * c * hw**2 + c * hw**2  # stem conv + BN
    for stage in range(3):
        if stage:  # residual reduction c → 2c, hw → hw/2
            co, ho = 2 * c, hw // 2
            params += 9 * c * co + 2 * co + 9 * co * co + 2 * co + c * co
            macs += (9 * c * co + co + 9 * co * co + co + c + c * co) * ho**2
            c, hw = co, ho
        cell_params, cell_macs = _cell_counts(cell, c, hw)
        params, macs = params + cells_per_stage * cell_params, macs + cells_per_stage * cell_macs
    params += 2 * c + c * NUM_CLASSES + NUM_CLASSES  # head BN, linear
    macs += c * hw**2 + c + c * NUM_CLASSES  # head BN, global pool, linear
    return params, macs


def _cell_counts(cell: Cell, c: int, hw: int) -> tuple[int, int]:
    """(params, MACs) of one cell at c channels and hw × hw."""
    p = sum(c * c + 2 * c if op == "nor_conv_1x1" else 9 * c * c + 2 * c if op == "nor_conv_3x3" else 0
            for op in cell.ops)
    m = sum((c * c + c) * hw**2 if op == "nor_conv_1x1" else (9 * c * c + c) * hw**2 if op == "nor_conv_3x3"
            else c * hw**2 if op == "avg_pool_3x3" else 0 for op in cell.ops)
    return p, m


class NB201Space(SearchSpace):
    """The 15,625 NAS-Bench-201 cells; model scale = the stem width C (16 = NAS-Bench-201's CIFAR network).
    Classes and representatives do not depend on the settings (they are those of the 5-cell, C = 16 network)."""

    name = "nb201"
    default_scale = 16
    arch_type = Cell
    has_representatives = True
    size = N_CELLS

    def __init__(self, cells_per_stage: int = CELLS_PER_STAGE):
        if type(cells_per_stage) is not int or cells_per_stage < 1:
            raise ConfigError(f"cells_per_stage is {shown(cells_per_stage)}; expected a positive integer "
                              f"({CELLS_PER_STAGE} = NAS-Bench-201)")
        self.cells_per_stage = cells_per_stage

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.cells_per_stage,))

    def configure(self, section: Mapping[str, Any]) -> NB201Space:
        """`space: {name: nb201, cells_per_stage: N}` (default 5, NAS-Bench-201's; fewer for a CPU preset)."""
        extra = sorted(k for k in section if k not in ("name", "cells_per_stage"))
        if extra:
            raise ConfigError(f"{extra[0]} is not a setting (the keys of space {self.name!r} are name, "
                              "cells_per_stage; the model width is the preset's model.width_base)")
        n = section.get("cells_per_stage", CELLS_PER_STAGE)
        return self if n == self.cells_per_stage else NB201Space(n)

    def enumerate(self) -> Iterator[Cell]:
        return _enumerate()

    def parse(self, value: Any) -> Cell:
        return parse_cell(value)

    def format(self, arch: Cell) -> str:
        return str(arch)

    def canonical(self, arch: Cell) -> Cell:
        return _classes()[0][self.parse(arch)]

    @property
    def coord_schema(self) -> list[tuple[str, pa.DataType]]:
        return [(c, pa.string()) for c in COORD_COLUMNS]

    def coords(self, arch: Cell) -> dict[str, str]:
        return dict(zip(COORD_COLUMNS, arch.ops, strict=True))

    def neighbours(self, arch: Cell) -> list[Cell]:
        """The 24 cells that differ from `arch` on exactly one edge."""
        out = []
        for k, op in enumerate(arch.ops):
            for alt in OPS:
                if alt != op:
                    out.append(Cell((*arch.ops[:k], alt, *arch.ops[k + 1:])))
        return out

    def encode(self, arch: Cell) -> np.ndarray:
        """One-hot of the six edges (6 × 5 = 30, op order of `OPS`)."""
        return np.array([1 if op == o else 0 for op in arch.ops for o in OPS], dtype=np.float32)

    def encoding_names(self) -> list[str]:
        """`<node><input>:<op>` per one-hot entry (e.g. `21:c3` = edge 2←1 is nor_conv_3x3)."""
        short = {"none": "0", "skip_connect": "id", "nor_conv_1x1": "c1", "nor_conv_3x3": "c3", "avg_pool_3x3": "ap"}
        return [f"{t}{s}:{short[op]}" for t, s in EDGES for op in OPS]

    def build_model(self, arch: Cell, scale: int, num_classes: int = NUM_CLASSES) -> Any:
        from nares.models.nb201 import NB201Net

        return NB201Net(self.parse(arch).ops, channels=scale, cells_per_stage=self.cells_per_stage,
                        num_classes=num_classes)

    def complexity(self, arch: Cell, scale: int) -> tuple[int, int]:
        return _counts(self.parse(arch), scale, self.cells_per_stage)

    @property
    def references(self) -> dict[str, Cell]:
        return {
            "all-nor_conv_3x3": Cell(("nor_conv_3x3",) * 6),
            "resnet": parse_cell("|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"),
            "parameter-free": Cell(("avg_pool_3x3",) * 6),
        }

    def index(self, id_map: str | Path | Mapping[int, Any] | None = None) -> SpaceIndex:
        """The default ids, a mapping arch_id → cell, a release jsonl (`arch_id`, `arch`), or NB201's index order
        from a robustness-dataset `meta.json` (`{"ids": {"0": {"nb201-string": …, "isomorph": "0"}, …}}`)."""
        if isinstance(id_map, str | Path) and str(id_map).endswith(".json"):
            return SpaceIndex.from_mapping(self, read_meta_ids(self, id_map))
        return super().index(id_map)


def read_meta_ids(space: NB201Space, path: str | Path) -> dict[int, Cell]:
    """arch_id (NB201 index + 1) → cell from a robustness-dataset `meta.json`, checking that its `isomorph`
    representatives partition the cells exactly as `unique_form` does; any mismatch is one `ArchError` line."""
    try:
        ids = json.loads(Path(path).read_text(encoding="utf-8"))["ids"]
        cells = {int(k): space.parse(v["nb201-string"]) for k, v in ids.items()}
        iso = {int(k): int(v["isomorph"]) for k, v in ids.items()}
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
        raise ArchError(f"{path}: not a meta.json with ids → nb201-string and isomorph ({type(e).__name__}: {e})") \
            from None
    if sorted(cells) != list(range(N_CELLS)):
        raise ArchError(f"{path}: ids must be exactly 0..{N_CELLS - 1} (found {len(cells)})")
    for i, j in iso.items():
        if j not in cells or space.canonical(cells[i]) != space.canonical(cells[j]):
            raise ArchError(f"{path}: id {i} ({cells[i]}) is marked isomorphic to {j}, which is not its class")
    if len(set(iso.values())) != N_UNIQUE:
        raise ArchError(f"{path}: {len(set(iso.values()))} isomorph representatives, expected {N_UNIQUE}")
    return {i + 1: c for i, c in cells.items()}


SPACE = NB201Space()
