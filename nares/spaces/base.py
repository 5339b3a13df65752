"""The `SearchSpace` interface every search space implements, and `SpaceIndex`, its arch_id bijection.

Owns nothing space-specific; imports only the standard library, numpy, pyarrow (types) and `nares.errors`.
Must not import torch at module level (tables and the query API use spaces without torch), nor any
concrete space.
"""

from __future__ import annotations

import abc
import json
import random
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from nares.errors import ArchError, ConfigError, shown

Arch = Hashable  # an architecture: any hashable, immutable value object of its space


class SearchSpace(abc.ABC):
    """A search space: enumeration or sampling, strings, ids, neighbours, NAS encoding, models, complexity.

    Enumerable spaces (`size` not None) also get, from `enumerate()`: `code_of`/`arch_of_code` (the position
    in `enumerate()`), `neighbour_table()` and `encoding_table()` for vectorised NAS, and the default ids
    (ascending MACs at `default_scale`, then parameters, then enumeration order).
    """

    name: str
    default_scale: int = 1  # the model scale at which default ids and reference complexity are counted
    arch_type: type = object  # the class of this space's architectures (`parse` returns instances)
    has_representatives: bool = False  # True when `canonical` maps isomorphic architectures to one representative

    # -- what a space must define -------------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def size(self) -> int | None:
        """Number of architectures, or None when the space is too large to enumerate."""

    @abc.abstractmethod
    def parse(self, value: Any) -> Arch:
        """An architecture from its string or another accepted form; a bad value is one `ArchError` line."""

    @abc.abstractmethod
    def format(self, arch: Arch) -> str:
        """The canonical string of `arch` (`parse(format(a)) == a`)."""

    @property
    @abc.abstractmethod
    def coord_schema(self) -> list[tuple[str, pa.DataType]]:
        """The coordinate columns of this space in tables: (column name, pyarrow type)."""

    @abc.abstractmethod
    def coords(self, arch: Arch) -> dict[str, Any]:
        """The coordinate values of `arch`, keyed by the columns of `coord_schema`."""

    @abc.abstractmethod
    def neighbours(self, arch: Arch) -> list[Arch]:
        """The architectures one mutation away (local search, mutation)."""

    @abc.abstractmethod
    def encode(self, arch: Arch) -> np.ndarray:
        """The NAS feature vector of `arch` (float32, fixed length)."""

    @abc.abstractmethod
    def build_model(self, arch: Arch, scale: int, num_classes: int = 10) -> Any:
        """The torch module of `arch`; `scale` is the preset's model size scale."""

    @abc.abstractmethod
    def complexity(self, arch: Arch, scale: int) -> tuple[int, int]:
        """Exact (parameters, MACs for one input image) of `build_model(arch, scale)`."""

    @property
    @abc.abstractmethod
    def references(self) -> dict[str, Arch]:
        """Named reference architectures (e.g. `smallest`, `largest`)."""

    # -- defaults -----------------------------------------------------------------------------------------
    def enumerate(self) -> Iterator[Arch]:
        """Every architecture in a fixed order; spaces too large to enumerate raise."""
        raise ArchError(f"search space {self.name!r} is too large to enumerate; sample from it instead")

    def encoding_names(self) -> list[str]:
        """A short name per entry of `encode` (reports label PCA loadings with them); default x0, x1, …"""
        n = len(self.encode(self.arch_of_code(0) if self.size else next(iter(self.references.values()))))
        return [f"x{i}" for i in range(n)]

    def configure(self, section: Mapping[str, Any]) -> SearchSpace:
        """This space under a preset's `space:` section (keys other than `name`); default: no keys allowed.
        A bad setting is one ConfigError line that starts with the key (`depths is [4, 6]; expected …`)."""
        extra = sorted(k for k in section if k != "name")
        if extra:
            raise ConfigError(f"{extra[0]} is not a setting (space {self.name!r} takes only name)")
        return self

    def canonical(self, arch: Arch) -> Arch:
        """The representative of `arch`'s isomorphism class (the one trained); identity by default."""
        return arch

    def sample(self, n: int, seed: int, *, exclude: Iterable[Arch] = ()) -> list[Arch]:
        """`n` distinct architectures drawn uniformly without replacement, reproducible from `seed`."""
        excluded = set(exclude)
        pool = [a for a in self._all() if a not in excluded]
        if not 0 <= n <= len(pool):
            raise ArchError(f"cannot sample {n} architectures from {len(pool)} available")
        return random.Random(seed).sample(pool, n)

    def index(self, id_map: str | Path | Mapping[int, Any] | None = None) -> SpaceIndex:
        """The arch_id bijection: the default ids, or those of an external map (a jsonl of records with
        `arch_id` and `arch`, or a mapping arch_id → architecture)."""
        if id_map is None:
            if self.size is None:
                raise ArchError(f"search space {self.name!r} is not enumerable: its arch ids are those of a sample "
                                "(sample:N[@SEED], ids = positions in the seeded draw) or of an id map")
            return self._default_index()
        if isinstance(id_map, Mapping):
            return SpaceIndex.from_mapping(self, id_map)
        return SpaceIndex.from_jsonl(self, id_map)

    # -- enumerable spaces: codes and vectorised tables ---------------------------------------------------
    def _all(self) -> tuple[Arch, ...]:
        cached = self.__dict__.get("_all_cache")
        if cached is None:
            cached = self.__dict__["_all_cache"] = tuple(self.enumerate())
        return cached

    def _codes(self) -> dict[Arch, int]:
        cached = self.__dict__.get("_codes_cache")
        if cached is None:
            cached = self.__dict__["_codes_cache"] = {a: i for i, a in enumerate(self._all())}
        return cached

    def code_of(self, arch: Arch) -> int:
        """The position of `arch` in `enumerate()`."""
        return self._codes()[self.parse(arch)]

    def arch_of_code(self, code: int) -> Arch:
        return self._all()[int(code)]

    def neighbour_table(self) -> np.ndarray:
        """(size, k) int64 codes of the neighbours of every code (every arch must have k neighbours)."""
        cached = self.__dict__.get("_nbr_cache")
        if cached is None:
            codes = self._codes()
            rows = [[codes[self.canonical(n)] for n in self.neighbours(a)] for a in self._all()]
            if len({len(r) for r in rows}) != 1:
                raise ArchError(f"space {self.name!r}: architectures have different numbers of neighbours")
            cached = self.__dict__["_nbr_cache"] = np.asarray(rows, dtype=np.int64)
        return cached

    def encoding_table(self) -> np.ndarray:
        """(size, d) float32 NAS encodings of every code."""
        cached = self.__dict__.get("_enc_cache")
        if cached is None:
            cached = self.__dict__["_enc_cache"] = np.stack([self.encode(a) for a in self._all()]).astype(np.float32)
        return cached

    def _default_index(self) -> SpaceIndex:
        cached = self.__dict__.get("_index_cache")
        if cached is None:
            codes = self._codes()

            def key(a: Arch) -> tuple[int, int, int]:
                params, macs = self.complexity(a, self.default_scale)
                return macs, params, codes[a]

            cached = self.__dict__["_index_cache"] = SpaceIndex(self, sorted(self._all(), key=key))
        return cached

    def __repr__(self) -> str:
        return f"<search space {self.name!r} ({self.size if self.size is not None else 'not enumerable'})>"


class SpaceIndex:
    """A bijection arch_id (1..size) ↔ architecture of `space`."""

    def __init__(self, space: SearchSpace, ordered: Sequence[Arch]):
        n = space.size
        if n is None:  # a sample of a space too large to enumerate: ids 1..len, each architecture once
            if not ordered or len(set(ordered)) != len(ordered):
                raise ArchError(f"an id map of space {space.name!r} must name distinct architectures "
                                f"(got {len(set(ordered))} distinct of {len(ordered)})")
        elif len(ordered) != n or len(set(ordered)) != n:
            raise ArchError(f"an id map must cover all {n} architectures exactly once (got {len(set(ordered))} distinct)")
        self.space = space
        self._by_id = tuple(ordered)
        self._ids = {a: i + 1 for i, a in enumerate(self._by_id)}

    @classmethod
    def of_sample(cls, space: SearchSpace, n: int, seed: int) -> SpaceIndex:
        """ids 1..n = the positions of `space.sample(n, seed)` (a prefix of a larger draw keeps its ids)."""
        return cls(space, space.sample(n, seed))

    @classmethod
    def from_mapping(cls, space: SearchSpace, id_map: Mapping[int, Any]) -> SpaceIndex:
        n = space.size or len(id_map)
        if sorted(id_map) != list(range(1, n + 1)):
            raise ArchError(f"arch ids must be exactly 1..{n} (found {len(id_map)} ids)")
        return cls(space, [space.parse(id_map[i]) for i in range(1, n + 1)])

    @classmethod
    def from_jsonl(cls, space: SearchSpace, path: str | Path) -> SpaceIndex:
        """Import the id map of an existing release (a jsonl with fields `arch_id` and `arch`)."""
        ordered: dict[int, Arch] = {}
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    aid = int(row["arch_id"])
                    arch = space.parse(row["arch"])
                except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
                    raise ArchError(f"{path}:{lineno}: not a record with arch_id and arch ({e})") from None
                if aid in ordered:
                    raise ArchError(f"{path}:{lineno}: arch_id {aid} appears twice")
                ordered[aid] = arch
        n = space.size or len(ordered)
        if sorted(ordered) != list(range(1, n + 1)):
            raise ArchError(f"{path}: arch ids must be exactly 1..{n} (found {len(ordered)} ids)")
        return cls(space, [ordered[i] for i in range(1, n + 1)])

    def id_of(self, arch: Any) -> int:
        return self._ids[self.space.parse(arch)]

    def arch_of(self, arch_id: int) -> Arch:
        if not isinstance(arch_id, int) or not 1 <= arch_id <= len(self._by_id):
            raise ArchError(f"arch_id {shown(arch_id)} is outside 1..{len(self._by_id)}")
        return self._by_id[arch_id - 1]

    def __iter__(self) -> Iterator[tuple[int, Arch]]:
        return iter(enumerate(self._by_id, 1))

    def __len__(self) -> int:
        return len(self._by_id)
