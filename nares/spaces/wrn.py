"""The WRN macro space of NARes (PROTOCOL §1): `Arch`, enumeration, arch ids, neighbourhood, sampling,
one-hot encoding, the exact closed-form params/MACs and the model builder, registered as "wrn".

Imports only the standard library, numpy, pyarrow and `nares.spaces.base`/`nares.errors`; torch is imported
by `build_model` alone (through `nares.models.wrn`, which takes plain depths and channels).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from functools import cache
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from nares.errors import ArchError, ConfigError, shown
from nares.spaces.base import SearchSpace, SpaceIndex

DEPTHS: tuple[int, ...] = (4, 5, 7, 9, 11)
WIDTHS: tuple[int, ...] = (8, 10, 12, 14, 16)
N_ARCHS = len(DEPTHS) ** 3 * len(WIDTHS) ** 3  # 15,625
JSONL_KEYS = ("D1", "W1", "D2", "W2", "D3", "W3")
COORD_COLUMNS = tuple(k.lower() for k in JSONL_KEYS)  # the coordinate columns of the tables: d1 … w3
IMAGE_SIZE = 32
STEM_CHANNELS = 16
NUM_CLASSES = 10
STRIDES = (1, 2, 2)


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
                raise ArchError(f"{f.name}={shown(v)} is not one of {list(allowed)}")

    @classmethod
    def parse(cls, value: Arch | str | Sequence[int] | dict) -> Arch:
        """Accept an Arch, a `D1-W1-D2-W2-D3-W3` string (ASCII digits), a 6-tuple/list of integers, or a
        published `arch` dict (integer values)."""
        if isinstance(value, Arch):
            return value
        if isinstance(value, dict):
            missing = [k for k in JSONL_KEYS if k not in value]
            if missing:
                raise ArchError(f"arch dict {shown(value)} lacks key {missing[0]!r} (expected {list(JSONL_KEYS)})")
            return cls.parse([value[k] for k in JSONL_KEYS])
        if isinstance(value, str):
            parts = value.strip().split("-")
            if len(parts) != 6 or not all(p.isascii() and p.isdigit() for p in parts):
                raise ArchError(
                    f"arch string {shown(value)} is not of the form D1-W1-D2-W2-D3-W3 with ASCII digits "
                    "(e.g. 5-10-5-10-5-10)"
                )
            return cls(*(int(p) for p in parts))
        if isinstance(value, Sequence) and not isinstance(value, bytes):
            if len(value) != 6:
                raise ArchError(f"arch {shown(tuple(value))} has {len(value)} values, expected 6 (D1,W1,D2,W2,D3,W3)")
            if any(isinstance(v, str | bytes | bool) for v in value):
                raise ArchError(f"arch {shown(tuple(value))} holds a non-integer value")
            try:
                ints = [int(v) for v in value]
            except (TypeError, ValueError):
                raise ArchError(f"arch {shown(tuple(value))} holds a non-integer value") from None
            if any(i != v for i, v in zip(ints, value, strict=True)):
                raise ArchError(f"arch {shown(tuple(value))} holds a non-integer value")
            return cls(*ints)
        raise ArchError(f"cannot read an architecture from {shown(value)} (type {type(value).__name__})")

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


# -- complexity in closed form (PROTOCOL §1) ------------------------------------------------------------------
def stage_channels(arch: Arch, width_base: int = 16) -> tuple[int, int, int]:
    """Channels of the three stages: width_base·2^(i-1)·Wi (16·W1, 32·W2, 64·W3 in the full protocol)."""
    return tuple(width_base * 2**i * w for i, w in enumerate(arch.widths))  # type: ignore[return-value]


@cache
def _counts(arch: Arch, width_base: int) -> tuple[int, int]:
    params = 3 * 9 * STEM_CHANNELS
    macs = 3 * 9 * STEM_CHANNELS * IMAGE_SIZE**2
    c_in, hw = STEM_CHANNELS, IMAGE_SIZE
    for depth, c, stride in zip(arch.depths, stage_channels(arch, width_base), STRIDES, strict=True):
        for i in range(depth):
            cin_b, s = (c_in, stride) if i == 0 else (c, 1)
            hw_in, hw_out = hw, hw // s
            params += 2 * cin_b + 9 * cin_b * c + 2 * c + 9 * c * c  # bn1, conv1, bn2, conv2
            macs += cin_b * hw_in**2 + 9 * cin_b * c * hw_out**2 + c * hw_out**2 + 9 * c * c * hw_out**2
            if s != 1 or cin_b != c:
                params += cin_b * c
                macs += cin_b * c * hw_out**2
            hw = hw_out
        c_in = c
    params += 2 * c_in + c_in * NUM_CLASSES + NUM_CLASSES  # head bn, fc
    macs += c_in * hw**2 + c_in + c_in * NUM_CLASSES  # head bn, global pool, fc
    return params, macs


def params(arch: Arch | str, width_base: int = 16) -> int:
    """Number of parameters (BN γ/β and the fc bias included)."""
    return _counts(Arch.parse(arch), width_base)[0]


def macs(arch: Arch | str, width_base: int = 16) -> int:
    """Multiply-accumulates for one 32×32 image in the torchprofile convention (conv and linear MACs plus
    one per output element of every batch-norm and pooling op), as the published dataset counted them."""
    return _counts(Arch.parse(arch), width_base)[1]


def build_model(arch: Arch | str, width_base: int = 16, num_classes: int = NUM_CLASSES) -> Any:
    """The pre-activation WRN (`nares.models.wrn.PreActWRN`) of `arch` (an Arch or its string)."""
    from nares.models.wrn import PreActWRN

    a = Arch.parse(arch)
    return PreActWRN(a.depths, stage_channels(a, width_base), STRIDES, stem_channels=STEM_CHANNELS,
                     num_classes=num_classes)


# -- enumeration, ids, neighbourhood, sampling, encoding -------------------------------------------------------
def choice_indices(arch: Arch) -> tuple[int, ...]:
    """The index (0..4) of each coordinate of `arch` in DEPTHS/WIDTHS."""
    return tuple((DEPTHS if k % 2 == 0 else WIDTHS).index(v) for k, v in enumerate(arch.to_tuple()))


def all_archs() -> list[Arch]:
    """All 15,625 architectures in lexicographic order of their encoding."""
    return list(SPACE._all())


class ArchIndex(SpaceIndex):
    """A bijection arch_id (1..15,625) ↔ Arch. The default orders by MACs with a deterministic tie-break:
    ascending MACs, then ascending parameter count, then the lexicographic order of (D1, W1, D2, W2, D3, W3)."""

    def __init__(self, ordered: Sequence[Arch], space: WRNSpace | None = None):
        super().__init__(space or SPACE, ordered)

    @classmethod
    def default(cls) -> ArchIndex:
        return SPACE.index()  # type: ignore[return-value]

    @classmethod
    def from_jsonl(cls, path: str | Path) -> ArchIndex:  # type: ignore[override]
        """Import the id map of an existing release (`cifar10.jsonl`: fields `arch_id` and `arch`)."""
        return SPACE.index(path)  # type: ignore[return-value]


def arch_id(arch: Arch | str | Sequence[int]) -> int:
    """The default arch_id (ascending MACs, deterministic tie-break) of an architecture."""
    return SPACE.index().id_of(arch)


def arch_from_id(arch_id_: int) -> Arch:
    return SPACE.index().arch_of(arch_id_)


def neighbours(arch: Arch) -> list[Arch]:
    """The 24 architectures that differ from `arch` in exactly one coordinate (PROTOCOL §1)."""
    return SPACE.neighbours(arch)


def random_archs(n: int, seed: int, *, exclude: Iterable[Arch] = ()) -> list[Arch]:
    """`n` distinct architectures drawn uniformly without replacement, reproducible from `seed`."""
    return SPACE.sample(n, seed, exclude=exclude)


def one_hot(arch: Arch) -> list[int]:
    """The 30-dim one-hot encoding (6 coordinates × 5 values) used by BANANAS (PROTOCOL §6)."""
    return [int(v) for v in SPACE.encode(arch)]


class WRNSpace(SearchSpace):
    """The WRN macro space over `depths` × `widths` per stage (default: the published 5 × 5 choices; a preset's
    `space: {depths, widths}` may restrict them to subsets). Model scale = the preset's `model.width_base`."""

    name = "wrn"
    default_scale = 16
    arch_type = Arch

    def __init__(self, depths: Sequence[int] = DEPTHS, widths: Sequence[int] = WIDTHS):
        self.depths, self.widths = tuple(depths), tuple(widths)
        for key, got, allowed in (("depths", self.depths, DEPTHS), ("widths", self.widths, WIDTHS)):
            bad = [v for v in got if v not in allowed]
            if bad or not got or list(got) != sorted(set(got)):
                raise ConfigError(f"{key} is {list(got)}; expected increasing values of {list(allowed)}")
        self._choices = (self.depths, self.widths) * 3
        radices = np.array([len(c) for c in self._choices], dtype=np.int64)
        self._radices = radices
        self._powers = np.array([int(np.prod(radices[k + 1:])) for k in range(6)], dtype=np.int64)

    def __reduce__(self) -> tuple[Any, ...]:  # pickled by its choices (worker processes rebuild the caches)
        return (type(self), (self.depths, self.widths))

    def configure(self, section: Mapping[str, Any]) -> WRNSpace:
        extra = sorted(k for k in section if k not in ("name", "depths", "widths"))
        if extra:
            raise ConfigError(f"{extra[0]} is not a setting (the keys of space {self.name!r} are name, depths, widths)")
        for key, allowed in (("depths", DEPTHS), ("widths", WIDTHS)):
            if key not in section:
                raise ConfigError(f"{key} is missing; expected increasing values of {list(allowed)}")
            if not isinstance(section[key], list | tuple) or not all(type(v) is int for v in section[key]):
                raise ConfigError(f"{key} is {shown(section[key])}; expected increasing values of {list(allowed)}")
        depths, widths = tuple(section["depths"]), tuple(section["widths"])
        return self if (depths, widths) == (self.depths, self.widths) else WRNSpace(depths, widths)

    @property
    def size(self) -> int:
        return int(np.prod(self._radices))

    def enumerate(self) -> Iterator[Arch]:
        """Lexicographic order of the encoding (D1, W1, D2, W2, D3, W3)."""
        return (Arch(*t) for t in product(*self._choices))

    def parse(self, value: Any) -> Arch:
        a = Arch.parse(value)
        if self._choices != (DEPTHS, WIDTHS) * 3:
            for k, (v, allowed) in enumerate(zip(a.to_tuple(), self._choices, strict=True)):
                if v not in allowed:
                    raise ArchError(f"{fields(Arch)[k].name}={v} is not one of {list(allowed)} in this preset's space")
        return a

    def format(self, arch: Arch) -> str:
        return str(arch)

    @property
    def coord_schema(self) -> list[tuple[str, pa.DataType]]:
        return [(c, pa.int8()) for c in COORD_COLUMNS]

    def coords(self, arch: Arch) -> dict[str, int]:
        return dict(zip(COORD_COLUMNS, arch.to_tuple(), strict=True))

    def neighbours(self, arch: Arch) -> list[Arch]:
        base = list(arch.to_tuple())
        out = []
        for i, v in enumerate(base):
            for alt in self._choices[i]:
                if alt != v:
                    t = base.copy()
                    t[i] = alt
                    out.append(Arch(*t))
        return out

    def encode(self, arch: Arch) -> np.ndarray:
        return np.array([1 if c == v else 0 for v, choices in zip(arch.to_tuple(), self._choices, strict=True)
                         for c in choices], dtype=np.float32)

    def build_model(self, arch: Arch, scale: int, num_classes: int = NUM_CLASSES) -> Any:
        return build_model(arch, scale, num_classes)

    def complexity(self, arch: Arch, scale: int) -> tuple[int, int]:
        return _counts(Arch.parse(arch), scale)

    @property
    def references(self) -> dict[str, Arch]:
        refs = {"smallest": Arch(*(c[0] for c in self._choices)), "largest": Arch(*(c[-1] for c in self._choices))}
        for name, t in (("wrn-34-10", (5, 10) * 3), ("wrn-70-16", (11, 16) * 3)):
            if all(v in c for v, c in zip(t, self._choices, strict=True)):
                refs[name] = Arch(*t)
        return refs

    def index(self, id_map: str | Path | Mapping[int, Any] | None = None) -> ArchIndex:
        if id_map is None:
            cached = self.__dict__.get("_wrn_index")
            if cached is None:
                cached = self.__dict__["_wrn_index"] = ArchIndex(super().index()._by_id, self)
            return cached
        return ArchIndex(super().index(id_map)._by_id, self)

    # vectorised NAS tables (mixed-radix digits of the code = choice indices of D1, W1, …, W3)
    def digits(self, codes: np.ndarray | int) -> np.ndarray:
        """(n, 6) choice indices of each code."""
        c = np.atleast_1d(np.asarray(codes, dtype=np.int64))
        return (c[:, None] // self._powers[None, :]) % self._radices[None, :]

    def code_of(self, arch: Arch) -> int:
        a = self.parse(arch)
        return int(np.dot([c.index(v) for v, c in zip(a.to_tuple(), self._choices, strict=True)], self._powers))

    def arch_of_code(self, code: int) -> Arch:
        return Arch(*(c[i] for c, i in zip(self._choices, self.digits(code)[0], strict=True)))

    def neighbour_table(self) -> np.ndarray:
        """(size, Σ(r-1)) codes of the one-coordinate neighbours: coordinate k, steps 1..r-1 (mod r)."""
        cached = self.__dict__.get("_nbr_cache")
        if cached is None:
            d = self.digits(np.arange(self.size))
            out = []
            for k, r in enumerate(self._radices):
                for step in range(1, int(r)):
                    nd = d.copy()
                    nd[:, k] = (nd[:, k] + step) % r
                    out.append(nd @ self._powers)
            cached = self.__dict__["_nbr_cache"] = np.stack(out, axis=1)
        return cached

    def encoding_table(self) -> np.ndarray:
        """(size, Σr) float32 one-hot encodings, as `encode`."""
        cached = self.__dict__.get("_enc_cache")
        if cached is None:
            n = self.size
            offsets = np.concatenate([[0], np.cumsum(self._radices)[:-1]])
            cached = np.zeros((n, int(self._radices.sum())), dtype=np.float32)
            cached[np.arange(n)[:, None], offsets[None, :] + self.digits(np.arange(n))] = 1
            self.__dict__["_enc_cache"] = cached
        return cached


SPACE = WRNSpace()
