"""The RobNets cell space (PROTOCOL §7.4; Guo et al., "When NAS Meets Robustness", CVPR 2020), registered as
"robnet": `RobNetArch`, its string, sampling without enumeration, one-bit neighbours, the bit encoding, density,
direct/skip convolution counts and budgets, the exact closed-form params/MACs and the model builder.

Imports only the standard library, numpy, pyarrow and `nares.spaces.base`/`nares.errors`; torch is imported by
`build_model` alone (through `nares.models.robnet`, which takes plain edge bits and channels).

Cell. States 0 and 1 are the cell's inputs (outputs of the cells k-2 and k-1), states 2..5 its 4 intermediate
nodes; node state t receives one edge from every earlier state, giving 14 edges in RobNets' order (edge e: state
t ← s for t = 2..5, s = 0..t-1). An edge carries a subset of {identity, 3×3 separable conv} (empty: zero op).
α of a cell = 28 bits, edge by edge, identity bit then conv bit: the per-edge codes "00" zero, "01" sep conv,
"10" identity, "11" both of RobNets' `architecture_code.py`. A cell's code is the integer of those 28 bits read
as binary, first edge's identity bit most significant.

String. The 14 edge codes joined by "-" (e.g. the published RobNet-large cell
"11-11-11-11-11-01-11-01-10-11-01-01-01-11"); a cell-free arch joins its L cell strings by "/", first cell
first. `parse` also accepts a `RobNetArch`, a sequence of 28 bits (0/1 numbers: also `encode`'s output), of 14
edge codes, or, cell-free, a flat sequence of L × 28 bits or a sequence of L cells in any of those forms.

Settings. A preset's `space: {name: robnet, variant: cell_based | cell_free, cells: L}` (defaults cell_based and
L = 20, the module's `SPACE`). `variant`: cell-based archs hold one α shared by all L cells, cell-free archs one α
per cell (2^28, resp. 2^(28·L) members: `size` is None and nothing is enumerated). `cells`: the network's depth
L ≥ 5 (`MIN_CELLS`), with the reduction cells at ⌊L/3⌋ and ⌊2L/3⌋ (`reduction_cells`: RobNets' rule, 6 and 13
for its 20 cells), so that every one of the three stages keeps at least one normal cell (L = 5: normal,
reduction, normal, reduction, normal); fewer cells shrink the network for CPU presets. A cell-based arch does not
depend on L (the same strings and seeded samples at every depth); a cell-free arch holds exactly L codes. An arch
says which variant it is (1 or L cell codes), so `parse`, `format`, `coords`, `build_model` and `complexity`
read either in any variant of the same L (a record naming space "robnet" reads back without its preset at
L = 20; a cell-free arch of another L needs its preset's `cells`); a string, sequence or arch with another
number of cells is one error line naming the expected count. `sample`, `neighbours`, `encode` and `references`
belong to the configured variant, and `neighbours`/`encode` refuse an arch of the other. No canonicalisation:
archs whose networks compute the same function (e.g. ops leaving a node that receives only zero edges) stay
distinct.

Direct and skip edges. In the cell DAG over states 0..5, an edge s → t is *direct* when t = s + 1 (input 1 →
node 0, and node k-1 → node k): edges 1, 4, 8 and 13, 4 per cell; the other 10 are *skip* edges. `conv_counts`
= (convs on direct edges, convs on skip edges), summed over all cells of a cell-free arch.

Density D = Σα / |E|, |E| = the number of edge-op slots of the arch's α: 28 for a cell-based arch, L × 28 for a
cell-free one. Budget by convolutions per cell (PROTOCOL: small < 7, medium 8–10, large > 11 as printed): the
printed gaps are closed outward, keeping medium as printed: small ≤ 7, medium 8–10, large ≥ 11 (7 → small,
11 → large; the published RobNet-large cell has 13). A cell-free arch is binned by its mean over its L cells:
small < 7.5 ≤ medium ≤ 10.5 < large.

Network (not stated in the paper; RobNets' CIFAR-10 config `experiments/RobNet_large_cifar10`): L = 20 cells,
reduction cells at 6 and 13 (= layers // 3, 2·layers // 3: the rule that `cells` generalises), stem 3·C channels,
model scale = C (initial channels), `default_scale` C = 36. At C = 36 on CIFAR-10 (10 classes, 32×32) the
published RobNet-large cell (cell-based) has exactly 6,942,070 parameters (paper: 6.89 M; RobNets' non-affine
cell BNs give 6,842,710) and the all-ops cell (all 28 bits) 7,411,222. See `nares.models.robnet` for the modules
and their differences from RobNets. MACs follow the torchprofile convention (conv and linear MACs plus one per
output element of every affine BatchNorm and pooling op), for one 32×32 image.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from numbers import Real
from typing import Any

import numpy as np
import pyarrow as pa

from nares.errors import ArchError, ConfigError, shown
from nares.spaces.base import SearchSpace

STEPS = 4  # intermediate nodes per cell
EDGES: tuple[tuple[int, int], ...] = tuple((s, t) for t in range(2, 2 + STEPS) for s in range(t))  # (source, target)
N_EDGES = len(EDGES)  # 14
BITS = 2 * N_EDGES  # 28 bits of α per cell
DIRECT: tuple[int, ...] = tuple(e for e, (s, t) in enumerate(EDGES) if t == s + 1)  # (1, 4, 8, 13)
SKIP: tuple[int, ...] = tuple(e for e in range(N_EDGES) if e not in DIRECT)
EDGE_CODES: tuple[str, ...] = ("00", "01", "10", "11")  # identity bit, conv bit
N_CELLS = 20  # cells of the network by default (RobNets' CIFAR config; the space setting `cells`)
MIN_CELLS = 5  # the fewest cells with a normal cell before, between and after the two reduction cells
STEM_MULTIPLIER = 3
DEFAULT_SCALE = 36  # initial channels C of RobNet-large (RobNets' CIFAR config)
IMAGE_SIZE = 32
NUM_CLASSES = 10
VARIANTS: tuple[str, ...] = ("cell_based", "cell_free")
BUDGETS: tuple[str, ...] = ("small", "medium", "large")
CELL_MASK = (1 << BITS) - 1

ROBNET_LARGE = "11-11-11-11-11-01-11-01-10-11-01-01-01-11"  # RobNets architecture_code.py, robnet_large_v1
ROBNET_FREE = "/".join((  # RobNets architecture_code.py, robnet_free (one cell per line)
    "11-10-11-11-10-11-01-01-10-11-11-00-11-01", "11-00-01-10-01-00-10-10-00-01-11-10-11-00",
    "11-11-11-01-01-11-01-00-10-00-10-10-00-11", "10-11-10-01-01-10-10-01-10-11-00-00-01-10",
    "11-11-01-00-10-10-10-01-10-01-00-10-01-11", "11-10-11-11-11-01-10-11-00-10-01-11-01-11",
    "11-11-11-10-10-01-11-10-01-10-10-10-01-10", "01-11-11-11-01-11-11-11-01-11-01-11-10-00",
    "11-11-11-11-11-01-01-11-10-01-00-10-01-11", "10-11-01-00-11-11-10-11-01-11-11-11-11-00",
    "11-10-11-00-00-00-11-00-01-10-00-01-10-11", "01-11-01-11-11-10-10-11-10-11-01-11-10-00",
    "11-11-10-10-01-00-10-11-11-01-10-10-00-01", "01-11-11-11-01-01-11-01-01-11-11-01-10-10",
    "01-11-11-11-11-01-00-01-10-10-11-10-10-11", "11-11-00-11-11-01-00-01-10-00-11-01-11-11",
    "11-11-01-11-11-10-11-10-10-10-10-10-11-11", "10-11-01-11-11-01-11-00-11-11-00-10-00-01",
    "11-10-11-11-11-11-11-10-11-00-11-01-11-11", "11-11-01-01-11-11-01-00-00-10-00-01-01-11",
))
_EXAMPLE = "e.g. 11-11-11-11-11-01-11-01-10-11-01-01-01-11"


@dataclass(frozen=True, order=True, slots=True)
class RobNetArch:
    """A RobNet architecture: the 28-bit code of each cell's α, one code (cell-based: shared by all L cells) or
    L ≥ 5 (cell-free: cell 0 first; L = 20 in RobNets' network)."""

    cells: tuple[int, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.cells, tuple) or not (len(self.cells) == 1 or len(self.cells) >= MIN_CELLS):
            raise ArchError(f"a RobNet arch holds 1 or at least {MIN_CELLS} cell codes, got {shown(self.cells)}")
        for k, c in enumerate(self.cells):
            if type(c) is not int or not 0 <= c <= CELL_MASK:
                raise ArchError(f"cell code {k} is {shown(c)}; expected an integer in 0..2^{BITS}-1")

    @classmethod
    def parse(cls, value: Any, cells: int = N_CELLS) -> RobNetArch:
        """A `RobNetArch` from itself, its string or a bit/edge-code sequence (see the module docstring), cell-based
        or cell-free of `cells` cells (the space's L); another number of cells is one ArchError line."""
        if isinstance(value, RobNetArch):
            if len(value.cells) not in (1, cells):
                raise ArchError(f"robnet arch {shown(str(value))} has {len(value.cells)} cell codes; expected 1 "
                                f"(cell-based) or {cells} (cell-free: the space's cells)")
            return value
        if isinstance(value, str):
            parts = value.strip().split("/")
            if len(parts) not in (1, cells):
                raise ArchError(f"robnet arch string {shown(value)} has {len(parts)} cells; expected 1 (cell-based) "
                                f"or {cells} (cell-free) joined by '/'")
            return cls(tuple(_cell_of_string(c, k, len(parts)) for k, c in enumerate(parts)))
        if isinstance(value, np.ndarray):
            value = value.tolist()
        if isinstance(value, Sequence) and not isinstance(value, bytes):
            items = list(value)
            if len(items) == N_EDGES and all(isinstance(v, str) and "-" not in v for v in items):
                return cls((_cell_of_codes(items, value),))
            if not any(_is_cell_like(v) for v in items):  # bits
                if len(items) not in (BITS, BITS * cells):
                    raise ArchError(f"robnet arch {shown(tuple(items))} has {len(items)} bits; expected {BITS} "
                                    f"(one cell) or {BITS * cells} ({cells} cells)")
                return cls(tuple(_cell_of_bits(items[i:i + BITS], value, i) for i in range(0, len(items), BITS)))
            if len(items) not in (1, cells):
                raise ArchError(f"robnet arch {shown(value)} has {len(items)} items; expected {BITS} or "
                                f"{BITS * cells} bits, {N_EDGES} edge codes, or 1 or {cells} cells")
            return cls(tuple(_cell_of_any(c, k, len(items)) for k, c in enumerate(items)))
        raise ArchError(f"cannot read a RobNet architecture from {shown(value)} (type {type(value).__name__}); "
                        f"expected its string ({_EXAMPLE}) or a sequence of {BITS} bits")

    @property
    def cell_based(self) -> bool:
        return len(self.cells) == 1

    def bits(self) -> tuple[int, ...]:
        """The α bits of all cells in string order (28 per cell)."""
        return tuple(b for c in self.cells for b in cell_bits(c))

    def __str__(self) -> str:
        return "/".join(cell_string(c) for c in self.cells)


# -- cells: codes, bits, strings ------------------------------------------------------------------------------
def cell_bits(code: int) -> tuple[int, ...]:
    """The 28 bits of a cell code, string order (edge 0 identity, edge 0 conv, edge 1 identity, …)."""
    return tuple((code >> (BITS - 1 - k)) & 1 for k in range(BITS))


def cell_edges(code: int) -> tuple[tuple[int, int], ...]:
    """(identity bit, conv bit) of each of the 14 edges of a cell code."""
    b = cell_bits(code)
    return tuple((b[2 * e], b[2 * e + 1]) for e in range(N_EDGES))


def cell_string(code: int) -> str:
    return "-".join(f"{i}{v}" for i, v in cell_edges(code))


def _code(bits: Iterable[int]) -> int:
    out = 0
    for b in bits:
        out = (out << 1) | b
    return out


def _cell_of_string(text: str, k: int, n: int) -> int:
    where = f" of cell {k}" if n > 1 else ""
    parts = text.strip().split("-")
    if len(parts) != N_EDGES:
        raise ArchError(f"robnet cell string {shown(text)}{where} has {len(parts)} edge codes; expected "
                        f"{N_EDGES} codes of {'/'.join(EDGE_CODES)} joined by '-' ({_EXAMPLE})")
    for e, p in enumerate(parts):
        if p not in EDGE_CODES:
            raise ArchError(f"edge {e}{where} is {shown(p)} in {shown(text)}; expected one of {', '.join(EDGE_CODES)} "
                            "(identity bit, conv bit)")
    return int("".join(parts), 2)


def _cell_of_codes(codes: list[str], value: Any) -> int:
    if len(codes) != N_EDGES:
        raise ArchError(f"robnet cell {shown(value)} has {len(codes)} edge codes; expected {N_EDGES}")
    for e, p in enumerate(codes):
        if p not in EDGE_CODES:
            raise ArchError(f"edge {e} is {shown(p)} in {shown(value)}; expected one of {', '.join(EDGE_CODES)}")
    return int("".join(codes), 2)


def _is_bit_like(v: Any) -> bool:
    return isinstance(v, Real | np.number) and not isinstance(v, str | bytes)


def _is_cell_like(v: Any) -> bool:
    """A cell string or a sequence (of bits or edge codes): an item of a sequence of cells, never a bit."""
    return isinstance(v, str) or (isinstance(v, Sequence) and not isinstance(v, bytes))


def _cell_of_bits(bits: Sequence[Any], value: Any, offset: int = 0) -> int:
    if len(bits) != BITS:
        raise ArchError(f"robnet cell {shown(value)} has {len(bits)} bits; expected {BITS}")
    for k, b in enumerate(bits):
        if not _is_bit_like(b) or b not in (0, 1):
            raise ArchError(f"bit {offset + k} of robnet arch {shown(value)} is {shown(b)}; expected 0 or 1")
    return _code(int(b) for b in bits)


def _cell_of_any(cell: Any, k: int, n: int) -> int:
    if isinstance(cell, str):
        return _cell_of_string(cell, k, n)
    if isinstance(cell, Sequence) and not isinstance(cell, bytes):
        items = list(cell)
        if len(items) == N_EDGES and all(isinstance(v, str) for v in items):
            return _cell_of_codes(items, cell)
        return _cell_of_bits(items, cell)
    raise ArchError(f"cell {k} is {shown(cell)}; expected a cell string ({_EXAMPLE}), {N_EDGES} edge codes "
                    f"or {BITS} bits")


def _as_arch(arch: Any) -> RobNetArch:
    """`arch` itself when it is a `RobNetArch` (of any L), else parsed at L = 20."""
    return arch if isinstance(arch, RobNetArch) else RobNetArch.parse(arch)


def reduction_cells(cells: int = N_CELLS) -> tuple[int, int]:
    """The positions of the two reduction cells among `cells` cells: ⌊L/3⌋ and ⌊2L/3⌋ (RobNets' rule; 6 and 13 of
    its 20 cells, 1 and 3 of 5)."""
    return cells // 3, 2 * cells // 3


def _check_cells(cells: Any) -> int:
    if type(cells) is not int or cells < MIN_CELLS:
        raise ConfigError(f"cells is {shown(cells)}; expected an integer of at least {MIN_CELLS} (a normal cell "
                          f"before, between and after the reduction cells ⌊cells/3⌋ and ⌊2·cells/3⌋; {N_CELLS} = "
                          "RobNets' CIFAR network)")
    return cells


# -- density, convolutions, budget ----------------------------------------------------------------------------
def density(arch: Any) -> float:
    """D = Σα / |E|: the set bits over the arch's edge-op slots (28 cell-based, L × 28 cell-free)."""
    a = _as_arch(arch)
    return sum(c.bit_count() for c in a.cells) / (BITS * len(a.cells))


def conv_counts(arch: Any) -> tuple[int, int]:
    """(separable convs on direct edges, on skip edges): of the one cell (cell-based) or summed over the L cells."""
    direct = skip = 0
    for c in _as_arch(arch).cells:
        edges = cell_edges(c)
        direct += sum(edges[e][1] for e in DIRECT)
        skip += sum(edges[e][1] for e in SKIP)
    return direct, skip


def identity_count(arch: Any) -> int:
    """Identity ops (of the one cell, or summed over the L cells)."""
    return sum(i for c in _as_arch(arch).cells for i, _ in cell_edges(c))


def budget(arch: Any) -> str:
    """"small" (≤ 7 convs per cell), "medium" (8–10) or "large" (≥ 11); cell-free: the mean over the cells,
    small < 7.5 ≤ medium ≤ 10.5 < large."""
    a = _as_arch(arch)
    twice, n = 2 * sum(conv_counts(a)), len(a.cells)
    return "small" if twice < 15 * n else "large" if twice > 21 * n else "medium"


# -- complexity in closed form (the modules of nares.models.robnet, torchprofile convention) --------------------
def _sep_conv(c: int, hw: int) -> tuple[int, int]:
    """Two (depthwise 3×3, pointwise 1×1, BN) at c channels, output hw × hw."""
    return 2 * (9 * c + c * c + 2 * c), 2 * (9 * c + c * c + c) * hw * hw


def _conv1x1_bn(c_in: int, c_out: int, hw: int) -> tuple[int, int]:
    """ReLU-conv1×1-BN, or a factorized reduce (two halves of the same cost), output hw × hw."""
    return c_in * c_out + 2 * c_out, (c_in * c_out + c_out) * hw * hw


@lru_cache(maxsize=1 << 16)
def _cell_counts(code: int, c_pp: int, c_p: int, c: int, hw_in: int, reduction: bool) -> tuple[int, int]:
    stride = 2 if reduction else 1
    hw = -(-hw_in // stride)
    params = macs = 0
    used: set[int] = set()
    for (s, _), (ident, conv) in zip(EDGES, cell_edges(code), strict=True):
        if ident or conv:
            used.add(s)
        st = stride if s < 2 else 1
        if conv:
            p, m = _sep_conv(c, hw)
            params, macs = params + p, macs + m
        if ident and st != 1:  # factorized reduce c → c
            p, m = _conv1x1_bn(c, c, hw)
            params, macs = params + p, macs + m
    for s, c_in in ((0, c_pp), (1, c_p)):  # preprocessing (FR or ReLU-conv-BN: same cost), output hw_in
        if s in used:
            p, m = _conv1x1_bn(c_in, c, hw_in)
            params, macs = params + p, macs + m
    return params, macs


@lru_cache(maxsize=1 << 14)
def _counts(cells: tuple[int, ...], scale: int, n_cells: int = N_CELLS, num_classes: int = NUM_CLASSES
            ) -> tuple[int, int]:
    c_stem = STEM_MULTIPLIER * scale
    params = 27 * c_stem + 2 * c_stem
    macs = (27 * c_stem + c_stem) * IMAGE_SIZE**2
    c_pp, c_p, c, hw = c_stem, c_stem, scale, IMAGE_SIZE
    reductions = reduction_cells(n_cells)
    for i in range(n_cells):
        reduction = i in reductions
        if reduction:
            c *= 2
        p, m = _cell_counts(cells[0] if len(cells) == 1 else cells[i], c_pp, c_p, c, hw, reduction)
        params, macs = params + p, macs + m
        if reduction:
            hw = -(-hw // 2)
        c_pp, c_p = c_p, STEPS * c
    params += c_p * num_classes + num_classes
    macs += c_p + c_p * num_classes  # global pool, linear
    return params, macs


def complexity(arch: Any, scale: int = DEFAULT_SCALE, cells: int = N_CELLS) -> tuple[int, int]:
    """Exact (params, MACs for one 32×32 image) of `build_model(arch, scale, cells=cells)` with 10 classes."""
    return _counts(RobNetArch.parse(arch, _check_cells(cells)).cells, scale, cells)


def build_model(arch: Any, scale: int = DEFAULT_SCALE, num_classes: int = NUM_CLASSES, cells: int = N_CELLS) -> Any:
    """The `nares.models.robnet.RobNet` of `arch` with C = `scale` initial channels and `cells` cells."""
    from nares.models.robnet import RobNet

    a = RobNetArch.parse(arch, _check_cells(cells))
    edges = [cell_edges(a.cells[0] if a.cell_based else a.cells[i]) for i in range(cells)]
    return RobNet(edges, channels=scale, num_classes=num_classes, stem_multiplier=STEM_MULTIPLIER)


# -- the space --------------------------------------------------------------------------------------------------
class RobNetSpace(SearchSpace):
    """The RobNets space, cell-based (one α for all cells) or cell-free (one α per cell), of L cells (`n_cells`,
    default 20: RobNets' CIFAR network); model scale = C."""

    name = "robnet"
    default_scale = DEFAULT_SCALE
    arch_type = RobNetArch
    size = None

    def __init__(self, variant: str = "cell_based", cells: int = N_CELLS):
        if not isinstance(variant, str) or variant not in VARIANTS:
            raise ConfigError(f"variant is {shown(variant)}; expected one of {list(VARIANTS)}")
        self.variant = variant
        self.n_cells = _check_cells(cells)  # cells of the network (L)
        self.n_alpha = 1 if variant == "cell_based" else cells  # cell codes per arch

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.variant, self.n_cells))

    def configure(self, section: Mapping[str, Any]) -> RobNetSpace:
        """`space: {name: robnet, variant: cell_based | cell_free, cells: L}` (defaults cell_based and 20, RobNets'
        network; fewer cells for a CPU preset)."""
        extra = sorted(k for k in section if k not in ("name", "variant", "cells"))
        if extra:
            raise ConfigError(f"{extra[0]} is not a setting (the keys of space {self.name!r} are name, variant, "
                              "cells; the model size is the preset's model.width_base)")
        variant = section.get("variant", "cell_based")
        if not isinstance(variant, str) or variant not in VARIANTS:
            raise ConfigError(f"variant is {shown(variant)}; expected one of {list(VARIANTS)}")
        cells = _check_cells(section.get("cells", N_CELLS))
        return self if (variant, cells) == (self.variant, self.n_cells) else RobNetSpace(variant, cells)

    def parse(self, value: Any) -> RobNetArch:
        return RobNetArch.parse(value, self.n_cells)

    def format(self, arch: RobNetArch) -> str:
        return str(self.parse(arch))

    def _own(self, arch: Any) -> RobNetArch:
        a = self.parse(arch)
        if len(a.cells) != self.n_alpha:
            raise ArchError(f"arch {shown(str(a))} has {len(a.cells)} cell codes; this {self.variant} space's archs "
                            f"have {self.n_alpha} (space.variant selects cell_based or cell_free, space.cells L)")
        return a

    @property
    def coord_schema(self) -> list[tuple[str, pa.DataType]]:
        """Numeric columns (reports box-plot them and take their PCA): D, direct/skip convs, identities, budget
        (0 small, 1 medium, 2 large); the α itself is the table's `arch` string."""
        return [("density", pa.float64()), ("direct_convs", pa.int16()), ("skip_convs", pa.int16()),
                ("identities", pa.int16()), ("budget", pa.int8())]

    def coords(self, arch: RobNetArch) -> dict[str, Any]:
        a = self.parse(arch)
        direct, skip = conv_counts(a)
        return {"density": density(a), "direct_convs": direct, "skip_convs": skip, "identities": identity_count(a),
                "budget": BUDGETS.index(budget(a))}

    def neighbours(self, arch: RobNetArch) -> list[RobNetArch]:
        """The archs one α bit away: 28 (cell-based) or L × 28 (cell-free), in bit order."""
        a = self._own(arch)
        return [RobNetArch((*a.cells[:k], c ^ (1 << (BITS - 1 - b)), *a.cells[k + 1:]))
                for k, c in enumerate(a.cells) for b in range(BITS)]

    def encode(self, arch: RobNetArch) -> np.ndarray:
        """The α bits in string order: 28 (cell-based) or L × 28 (cell-free, cell 0 first)."""
        return np.array(self._own(arch).bits(), dtype=np.float32)

    def sample(self, n: int, seed: int, *, exclude: Iterable[Any] = ()) -> list[RobNetArch]:
        """`n` distinct archs of this variant, uniform without replacement (uniform draws of all bits, repeats and
        `exclude`d archs redrawn), reproducible from `seed`; nothing is enumerated."""
        excluded = {a for a in map(self.parse, exclude) if len(a.cells) == self.n_alpha}
        available = 2 ** (BITS * self.n_alpha) - len(excluded)
        if type(n) is not int or not 0 <= n <= available:
            raise ArchError(f"cannot sample {shown(n)} architectures from {available} available")
        rng = random.Random(seed)
        seen: set[RobNetArch] = set()
        out: list[RobNetArch] = []
        while len(out) < n:
            x = rng.getrandbits(BITS * self.n_alpha)
            a = RobNetArch(tuple((x >> (BITS * (self.n_alpha - 1 - k))) & CELL_MASK for k in range(self.n_alpha)))
            if a not in seen and a not in excluded:
                seen.add(a)
                out.append(a)
        return out

    def build_model(self, arch: RobNetArch, scale: int, num_classes: int = NUM_CLASSES) -> Any:
        return build_model(arch, scale, num_classes, cells=self.n_cells)

    def complexity(self, arch: RobNetArch, scale: int) -> tuple[int, int]:
        return complexity(arch, scale, cells=self.n_cells)

    @property
    def references(self) -> dict[str, RobNetArch]:
        """all-ops (all bits: the one-shot supernet), all-conv, all-identity and the published RobNet-large cell
        (RobNets `architecture_code.py`, robnet_large_v1 = v2), each in every cell; cell-free at 20 cells also
        robnet-free (its 20 published cells)."""
        cells = {"all-ops": "-".join(["11"] * N_EDGES), "all-conv": "-".join(["01"] * N_EDGES),
                 "all-identity": "-".join(["10"] * N_EDGES), "robnet-large": ROBNET_LARGE}
        refs = {k: RobNetArch((_cell_of_string(v, 0, 1),) * self.n_alpha) for k, v in cells.items()}
        if self.variant == "cell_free" and self.n_cells == N_CELLS:
            refs["robnet-free"] = RobNetArch.parse(ROBNET_FREE)
        return refs

    def __repr__(self) -> str:
        cells = "" if self.n_cells == N_CELLS else f", {self.n_cells} cells"
        return f"<search space {self.name!r} ({self.variant}{cells}, not enumerable)>"


SPACE = RobNetSpace()
