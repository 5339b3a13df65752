"""Which architectures a sweep covers, and the order it runs them in.

A selection is one string (the form the `nares/full-sweep` deployment takes as a parameter):

- `all`                      every architecture of the space (15,625 for WRN);
- `ids:A-B` / `ids:3,7,42`   arch ids, inclusive ranges and lists mixed (`ids:1-10,100`);
- `list:4-8-4-8-4-8,5-10-5-10-5-10`  explicit architectures (the space's strings, comma separated);
- `sample:N` / `sample:N@S`  N distinct architectures drawn uniformly with seed S (default 0).

Every function takes the search space (default: WRN) and reads ids, strings, sampling and MACs from it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from nares.errors import ArchError, NaresError
from nares.spaces import SearchSpace, SpaceIndex, get_space, space_for

ORDERS = ("largest_first", "smallest_first", "id")


class SweepError(NaresError):
    """A bad sweep request (selection, order, resources) or a sweep that could not finish."""


def _parse_ids(body: str, n_archs: int) -> list[int]:
    ids: list[int] = []
    for part in filter(None, (p.strip() for p in body.split(","))):
        lo, _, hi = part.partition("-")
        try:
            a, b = int(lo), int(hi or lo)
        except ValueError:
            raise SweepError(f"bad arch-id range {part!r} in selection (expected e.g. ids:1-10,42)") from None
        if not 1 <= a <= b <= n_archs:
            raise SweepError(f"arch-id range {part!r} is outside 1..{n_archs} or reversed")
        ids.extend(range(a, b + 1))
    return ids


def _parse_sample(body: str, n_archs: int | None) -> tuple[int, int]:
    """(N, SEED) of `sample:N[@SEED]` (seed 0 by default), N in 1..n_archs (any N ≥ 1 when None)."""
    n_s, _, seed_s = body.partition("@")
    try:
        n, seed = int(n_s), int(seed_s or 0)
    except ValueError:
        raise SweepError(f"bad sample {body!r} in selection (expected sample:N or sample:N@SEED)") from None
    if n < 1 or (n_archs is not None and n > n_archs):
        raise SweepError(f"sample size {n} is outside 1..{n_archs if n_archs is not None else 'any'}")
    return n, seed


def select_archs(selection: str | Sequence[str], space: SearchSpace | None = None,
                 index: SpaceIndex | None = None) -> list[tuple[int, Any]]:
    """(arch_id, arch) pairs of `space` (default WRN) named by `selection`, each once, in arch-id order;
    ids are those of `index` (default: the space's default ids). In a space with isomorphism classes each named
    architecture is replaced by its class's representative (`all` on nb201: the 6,466 representatives)."""
    space = space or get_space("wrn")
    if not isinstance(selection, str):
        selection = "list:" + ",".join(str(s) for s in selection)
    if index is None and space.size is None:  # too large to enumerate: the sample is the id map
        kind, _, body = selection.strip().partition(":")
        if kind.strip().lower() != "sample":
            raise SweepError(f"search space {space.name!r} is too large to enumerate: select sample:N[@SEED] "
                             f"(got {selection!r})")
        n, seed = _parse_sample(body, None)
        index = SpaceIndex.of_sample(space, n, seed)
    index = index or space.index()
    n_archs = len(index)
    kind, _, body = selection.strip().partition(":")
    kind = kind.strip().lower()
    if kind == "all" and not body:
        ids = range(1, n_archs + 1)
    elif kind == "ids":
        ids = _parse_ids(body, n_archs)
    elif kind == "list":
        try:
            ids = [index.id_of(space.parse(s.strip())) for s in body.split(",") if s.strip()]
        except ArchError as e:
            raise SweepError(f"bad architecture in selection {selection!r}: {e}") from None
    elif kind == "sample":
        n, seed = _parse_sample(body, n_archs)
        ids = [index.id_of(a) for a in space.sample(n, seed)]
    else:
        raise SweepError(f"unknown selection {selection!r} (expected all, ids:A-B, list:ARCH,..., sample:N[@SEED])")
    if space.has_representatives:  # isomorphic architectures: only each class's representative is trained
        ids = [index.id_of(space.canonical(index.arch_of(i))) for i in ids]
    unique = sorted(set(ids))
    if not unique:
        raise SweepError(f"selection {selection!r} names no architecture")
    return [(i, index.arch_of(i)) for i in unique]


def order_jobs(pairs: Iterable[tuple[int, Any]], order: str, width_base: int = 16,
               space: SearchSpace | None = None) -> list[tuple[int, Any]]:
    """Sort (arch_id, arch) by cost: `largest_first` (most MACs at model scale `width_base` first, so the long
    jobs never trail at the end), `smallest_first`, or `id`. Ties are broken by arch id (deterministic)."""
    pairs = list(pairs)
    if order == "id":
        return sorted(pairs, key=lambda p: p[0])
    if order not in ORDERS:
        raise SweepError(f"unknown sweep order {order!r} (expected one of {', '.join(ORDERS)})")
    space = space or get_space("wrn")
    sign = -1 if order == "largest_first" else 1
    return sorted(pairs, key=lambda p: (sign * space.complexity(p[1], width_base)[1], sign * p[0]))


def plan_jobs(cfg: Mapping[str, Any], selection: str | Sequence[str], done: Iterable[int] = ()
              ) -> tuple[list[tuple[int, str]], int]:
    """The architectures of the resolved preset `cfg`'s space named by `selection` and not in `done`, in the
    preset's cost order (`sweep.order` at `model.width_base`), as (arch_id, canonical string); and how many of
    the selected were in `done` already."""
    space = space_for(cfg)
    selected = select_archs(selection, space)
    done = set(done)
    todo = [(i, a) for i, a in selected if i not in done]
    ordered = order_jobs(todo, cfg["sweep"]["order"], cfg["model"]["width_base"], space)
    return [(i, space.format(a)) for i, a in ordered], len(selected) - len(todo)
