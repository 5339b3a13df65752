"""The search space restricted to the architectures a dataset answers: what NAS searches on a release that does not
answer its whole space (a tiny NB201 release trains a few classes; a RobNet release holds a sample of a space too
large to enumerate).

`AnsweredSpace(space, archs)` is a `SearchSpace` whose architectures are `archs` (codes 0..N-1 in that order):
its neighbours of an architecture are the answered ones among its neighbours in `space` (each mapped to its class's
representative, as the whole space's table does), so local search and mutation never leave the answered set; its
encodings are `space`'s. Its neighbourhoods are uneven and can be empty or exhausted, so the searches treat it as
sparse (`nares.nas.algorithms`): an architecture with no unseen answered neighbour mutates to a random unseen one.

Imports numpy and the spaces; not the dataset API, the store, Prefect or Ray.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from nares.errors import NaresError
from nares.spaces import SearchSpace
from nares.spaces.base import Arch


class AnsweredSpace(SearchSpace):
    """`space` restricted to `archs` (distinct architectures of it, in code order)."""

    def __init__(self, space: SearchSpace, archs: Sequence[Arch]):
        archs = [space.parse(a) for a in archs]
        if not archs or len(set(archs)) != len(archs):
            raise NaresError(f"a restricted search space needs distinct architectures of {space.name!r} "
                             f"(got {len(set(archs))} distinct of {len(archs)})")
        self.base = space
        self.name = space.name
        self.has_representatives = space.has_representatives
        self.default_scale = space.default_scale
        self.arch_type = space.arch_type
        self.__dict__["_all_cache"] = tuple(archs)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.base, list(self._all())))

    @property
    def size(self) -> int:
        return len(self._all())

    def enumerate(self) -> Iterator[Arch]:
        return iter(self._all())

    def parse(self, value: Any) -> Arch:
        return self.base.parse(value)

    def format(self, arch: Arch) -> str:
        return self.base.format(arch)

    @property
    def coord_schema(self) -> list[tuple[str, pa.DataType]]:
        return self.base.coord_schema

    def coords(self, arch: Arch) -> dict[str, Any]:
        return self.base.coords(arch)

    def neighbours(self, arch: Arch) -> list[Arch]:
        """The answered architectures among `arch`'s neighbours in the whole space (their representatives)."""
        codes = self._codes()
        seen: dict[Arch, None] = {}
        for n in self.base.neighbours(arch):
            rep = self.base.canonical(n)
            if rep in codes and rep != arch:
                seen[rep] = None
        return list(seen)

    def encode(self, arch: Arch) -> np.ndarray:
        return self.base.encode(arch)

    def build_model(self, arch: Arch, scale: int, num_classes: int = 10) -> Any:
        return self.base.build_model(arch, scale, num_classes)

    def complexity(self, arch: Arch, scale: int) -> tuple[int, int]:
        return self.base.complexity(arch, scale)

    @property
    def references(self) -> dict[str, Arch]:
        return self.base.references

    def canonical(self, arch: Arch) -> Arch:
        return self.base.canonical(arch)

    def neighbour_table(self) -> list[np.ndarray]:  # type: ignore[override]
        """Per code, the int64 codes of its answered neighbours (rows of different lengths, possibly empty)."""
        cached = self.__dict__.get("_nbr_cache")
        if cached is None:
            codes = self._codes()
            cached = self.__dict__["_nbr_cache"] = [np.array([codes[n] for n in self.neighbours(a)], dtype=np.int64)
                                                    for a in self._all()]
        return cached

    def __repr__(self) -> str:
        return f"<search space {self.name!r} restricted to {self.size} answered architectures>"
