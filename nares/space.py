"""The NARes search space: the `Arch` value type, enumeration, arch ids, neighbourhood and sampling.

Owns PROTOCOL §1 (encoding, ids, neighbourhood). Imports only the standard library and
`nares.complexity` (for MAC-ordered ids).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from functools import cache
from itertools import product
from pathlib import Path

from nares.errors import ArchError

DEPTHS: tuple[int, ...] = (4, 5, 7, 9, 11)
WIDTHS: tuple[int, ...] = (8, 10, 12, 14, 16)
N_ARCHS = len(DEPTHS) ** 3 * len(WIDTHS) ** 3  # 15,625
JSONL_KEYS = ("D1", "W1", "D2", "W2", "D3", "W3")
COORD_COLUMNS = tuple(k.lower() for k in JSONL_KEYS)  # the coordinate columns of the tables: d1 … w3


@dataclass(frozen=True, order=True, slots=True)
class Arch:
    """One architecture `[D1, W1, D2, W2, D3, W3]`: blocks and width factor of each of the 3 stages."""

    depth1: int
    width1: int
    depth2: int
    width2: int
    depth3: int
    width3: int

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            allowed = DEPTHS if f.name.startswith("depth") else WIDTHS
            if type(v) is not int or v not in allowed:
                raise ArchError(f"{f.name}={v!r} is not one of {list(allowed)}")

    @classmethod
    def parse(cls, value: Arch | str | Sequence[int] | dict) -> Arch:
        """Accept an Arch, a `D1-W1-D2-W2-D3-W3` string, a 6-tuple/list, or a published `arch` dict."""
        if isinstance(value, Arch):
            return value
        if isinstance(value, dict):
            try:
                return cls(*(int(value[k]) for k in JSONL_KEYS))
            except KeyError as e:
                raise ArchError(f"arch dict {value!r} lacks key {e.args[0]!r} (expected {list(JSONL_KEYS)})") from None
        if isinstance(value, str):
            parts = value.strip().split("-")
            if len(parts) != 6 or not all(p.isdigit() for p in parts):
                raise ArchError(f"arch string {value!r} is not of the form D1-W1-D2-W2-D3-W3 (e.g. 5-10-5-10-5-10)")
            return cls(*(int(p) for p in parts))
        if isinstance(value, Sequence) and not isinstance(value, bytes):
            if len(value) != 6:
                raise ArchError(f"arch {tuple(value)!r} has {len(value)} values, expected 6 (D1,W1,D2,W2,D3,W3)")
            try:
                ints = [int(v) for v in value]
            except (TypeError, ValueError):
                raise ArchError(f"arch {tuple(value)!r} holds a non-integer value") from None
            if any(i != v for i, v in zip(ints, value, strict=True)):
                raise ArchError(f"arch {tuple(value)!r} holds a non-integer value")
            return cls(*ints)
        raise ArchError(f"cannot read an architecture from {value!r} (type {type(value).__name__})")

    def to_tuple(self) -> tuple[int, int, int, int, int, int]:
        return (self.depth1, self.width1, self.depth2, self.width2, self.depth3, self.width3)

    def to_jsonl_dict(self) -> dict[str, int]:
        """The published record's `arch` object (keys D1, W1, D2, W2, D3, W3)."""
        return dict(zip(JSONL_KEYS, self.to_tuple(), strict=True))

    @property
    def depths(self) -> tuple[int, int, int]:
        return (self.depth1, self.depth2, self.depth3)

    @property
    def widths(self) -> tuple[int, int, int]:
        return (self.width1, self.width2, self.width3)

    @property
    def depth_name(self) -> int:
        """The WRN depth name: 2·(D1+D2+D3) + 4 (34 for WRN-34-10)."""
        return 2 * sum(self.depths) + 4

    def __str__(self) -> str:
        return "-".join(str(v) for v in self.to_tuple())


def choice_indices(arch: Arch) -> tuple[int, ...]:
    """The index (0..4) of each coordinate of `arch` in DEPTHS/WIDTHS."""
    return tuple((DEPTHS if k % 2 == 0 else WIDTHS).index(v) for k, v in enumerate(arch.to_tuple()))


def all_archs() -> list[Arch]:
    """All 15,625 architectures in lexicographic order of their encoding."""
    return list(_all_archs())


@cache
def _all_archs() -> tuple[Arch, ...]:
    return tuple(Arch(d1, w1, d2, w2, d3, w3) for d1, w1, d2, w2, d3, w3 in product(DEPTHS, WIDTHS, DEPTHS, WIDTHS, DEPTHS, WIDTHS))


@cache
def _default_ids() -> tuple[dict[Arch, int], tuple[Arch, ...]]:
    from nares.complexity import macs

    # Tie-break rule (documented in README/dataset card): ascending MACs, then ascending parameter
    # count, then the lexicographic order of the encoding (D1, W1, D2, W2, D3, W3).
    from nares.complexity import params as n_params

    ordered = tuple(sorted(_all_archs(), key=lambda a: (macs(a), n_params(a), a.to_tuple())))
    return {a: i + 1 for i, a in enumerate(ordered)}, ordered


class ArchIndex:
    """A bijection arch_id (1..15,625) ↔ Arch. The default orders by MACs with a deterministic tie-break."""

    def __init__(self, ordered: Sequence[Arch]):
        if len(ordered) != N_ARCHS or len(set(ordered)) != N_ARCHS:
            raise ArchError(f"an id map must cover all {N_ARCHS} architectures exactly once (got {len(set(ordered))} distinct)")
        self._by_id = tuple(ordered)
        self._ids = {a: i + 1 for i, a in enumerate(self._by_id)}

    @classmethod
    def default(cls) -> ArchIndex:
        return cls(_default_ids()[1])

    @classmethod
    def from_jsonl(cls, path: str | Path) -> ArchIndex:
        """Import the id map of an existing release (`cifar10.jsonl`: fields `arch_id` and `arch`)."""
        ordered: dict[int, Arch] = {}
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    aid = int(row["arch_id"])
                    arch = Arch.parse(row["arch"])
                except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
                    raise ArchError(f"{path}:{lineno}: not a record with arch_id and arch ({e})") from None
                if aid in ordered:
                    raise ArchError(f"{path}:{lineno}: arch_id {aid} appears twice")
                ordered[aid] = arch
        if sorted(ordered) != list(range(1, N_ARCHS + 1)):
            raise ArchError(f"{path}: arch ids must be exactly 1..{N_ARCHS} (found {len(ordered)} ids)")
        return cls([ordered[i] for i in range(1, N_ARCHS + 1)])

    def id_of(self, arch: Arch | str | Sequence[int]) -> int:
        return self._ids[Arch.parse(arch)]

    def arch_of(self, arch_id: int) -> Arch:
        if not isinstance(arch_id, int) or not 1 <= arch_id <= N_ARCHS:
            raise ArchError(f"arch_id {arch_id!r} is outside 1..{N_ARCHS}")
        return self._by_id[arch_id - 1]

    def __iter__(self) -> Iterator[tuple[int, Arch]]:
        return iter(enumerate(self._by_id, 1))

    def __len__(self) -> int:
        return N_ARCHS


def arch_id(arch: Arch | str | Sequence[int]) -> int:
    """The default arch_id (ascending MACs, deterministic tie-break) of an architecture."""
    return _default_ids()[0][Arch.parse(arch)]


def arch_from_id(arch_id_: int) -> Arch:
    return ArchIndex.default().arch_of(arch_id_)


def neighbours(arch: Arch) -> list[Arch]:
    """The 24 architectures that differ from `arch` in exactly one coordinate (PROTOCOL §1)."""
    base = list(arch.to_tuple())
    out = []
    for i, v in enumerate(base):
        for alt in DEPTHS if i % 2 == 0 else WIDTHS:
            if alt != v:
                t = base.copy()
                t[i] = alt
                out.append(Arch(*t))
    return out


def random_archs(n: int, seed: int, *, exclude: Iterable[Arch] = ()) -> list[Arch]:
    """`n` distinct architectures drawn uniformly without replacement, reproducible from `seed`."""
    excluded = set(exclude)
    pool = [a for a in _all_archs() if a not in excluded]
    if not 0 <= n <= len(pool):
        raise ArchError(f"cannot sample {n} architectures from {len(pool)} available")
    return random.Random(seed).sample(pool, n)


def one_hot(arch: Arch) -> list[int]:
    """The 30-dim one-hot encoding (6 coordinates × 5 values) used by BANANAS (PROTOCOL §6)."""
    vec = []
    for i, v in enumerate(arch.to_tuple()):
        choices = DEPTHS if i % 2 == 0 else WIDTHS
        vec.extend(1 if c == v else 0 for c in choices)
    return vec
