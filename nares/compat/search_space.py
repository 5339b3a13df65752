"""The official NARes `search_space.py` names: `Arch`, `IntCodec`, `OneHotCodec`, `WRNSearchSpace`.

Behaviour follows the official file (PROTOCOL §9): the same value order, one-hot layout, neighbour
order (coordinate by coordinate, values ascending) and iteration order (`itertools.product`), and the
same calls on the random source — Python's `random` module by default, so `random.seed(s)` before a
search reproduces the official draws; `WRNSearchSpace(rng=random.Random(s))` keeps them private.
`Arch` is the project's `nares.spaces.wrn.Arch` (validated, frozen) with `from_tuple`, compared by its tuple.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from nares.spaces.wrn import DEPTHS, WIDTHS
from nares.spaces.wrn import Arch as _Arch


class Arch(_Arch):
    """An architecture (fields depth1, width1, depth2, width2, depth3, width3); equal to any object with
    the same `to_tuple()` (the official `Arch` included), hashed by its tuple."""

    __slots__ = ()

    @classmethod
    def from_tuple(cls, arch_tuple: Sequence[int]) -> Arch:
        return cls(*arch_tuple)

    def __eq__(self, other: object) -> bool:
        to_tuple = getattr(other, "to_tuple", None)
        return callable(to_tuple) and self.to_tuple() == to_tuple()

    def __hash__(self) -> int:
        return hash(self.to_tuple())

    def __str__(self) -> str:
        d1, w1, d2, w2, d3, w3 = self.to_tuple()
        return f"Arch(D1={d1}, W1={w1}, D2={d2}, W2={w2}, D3={d3}, W3={w3})"


class WRNSearchSpace:
    """The 5^6 WRN space: sampling, neighbours and iteration as the official class does them."""

    depth1: tuple[int, ...] = DEPTHS
    width1: tuple[int, ...] = WIDTHS
    depth2: tuple[int, ...] = DEPTHS
    width2: tuple[int, ...] = WIDTHS
    depth3: tuple[int, ...] = DEPTHS
    width3: tuple[int, ...] = WIDTHS

    def __init__(self, rng: random.Random | Any = None):
        self.rng = rng if rng is not None else random  # the module: official code seeds it globally

    def _choices(self) -> list[tuple[int, ...]]:
        return [self.depth1, self.width1, self.depth2, self.width2, self.depth3, self.width3]

    def sample_arch(self) -> Arch:
        """One coordinate after the other, uniformly (with replacement across calls)."""
        return Arch(*(self.rng.choice(c) for c in self._choices()))

    def sample_archs(self, n: int) -> list[Arch]:
        """`n` independent samples: repeats are possible, as in the official code."""
        return [self.sample_arch() for _ in range(n)]

    def get_neighbors(self, arch: Any, shuffle: bool = False) -> list[Arch]:
        """The 24 one-coordinate neighbours, coordinate by coordinate; shuffled in place when asked."""
        base = list(arch.to_tuple())
        out = []
        for i, choices in enumerate(self._choices()):
            for v in choices:
                if v != base[i]:
                    t = base.copy()
                    t[i] = v
                    out.append(Arch(*t))
        if shuffle:
            self.rng.shuffle(out)
        return out

    def get_random_neighbor(self, arch: Any) -> Arch:
        """A random coordinate (randint 0..5), then a random other value of it."""
        t = list(arch.to_tuple())
        choices = self._choices()
        i = self.rng.randint(0, len(choices) - 1)
        others = [v for v in choices[i] if v != t[i]]
        t[i] = self.rng.choice(others)
        return Arch(*t)

    def get_arch_iterator(self) -> Iterator[Arch]:
        for values in itertools.product(*self._choices()):
            yield Arch(*values)


class IntCodec:
    """Arch ↔ the 6 value indices."""

    def __init__(self, search_space: WRNSearchSpace):
        self.choices = search_space._choices()
        self.index = [{v: i for i, v in enumerate(c)} for c in self.choices]

    def encode(self, arch: Any) -> tuple[int, ...]:
        return tuple(ix[v] for ix, v in zip(self.index, arch.to_tuple(), strict=True))

    def decode(self, code: Sequence[int]) -> Arch:
        return Arch(*(c[int(i)] for c, i in zip(self.choices, code, strict=True)))


class OneHotCodec:
    """Arch ↔ the 30-dim one-hot vector (int32; 6 segments of 5 values, in coordinate order)."""

    def __init__(self, search_space: WRNSearchSpace):
        self.choices = search_space._choices()
        self.index = [{v: i for i, v in enumerate(c)} for c in self.choices]
        self.seg_lengths = [len(c) for c in self.choices]
        self.code_length = sum(self.seg_lengths)

    def encode(self, arch: Any) -> np.ndarray:
        code = np.zeros(self.code_length, dtype=np.int32)
        offset = 0
        for ix, n, v in zip(self.index, self.seg_lengths, arch.to_tuple(), strict=True):
            code[offset + ix[v]] = 1
            offset += n
        return code

    def decode(self, code: Sequence[float]) -> Arch:
        """Each segment's argmax (first on ties), so float and int codes both decode."""
        values, offset = [], 0
        for c, n in zip(self.choices, self.seg_lengths, strict=True):
            values.append(c[int(np.argmax(code[offset:offset + n]))])
            offset += n
        return Arch(*values)
