"""Which architectures a sweep covers, and the order it runs them in.

A selection is one string (the form the `nares/full-sweep` deployment takes as a parameter):

- `all`                      every architecture of the space (15,625);
- `ids:A-B` / `ids:3,7,42`   arch ids, inclusive ranges and lists mixed (`ids:1-10,100`);
- `list:4-8-4-8-4-8,5-10-5-10-5-10`  explicit architectures (`D1-W1-D2-W2-D3-W3`, comma separated);
- `sample:N` / `sample:N@S`  N distinct architectures drawn uniformly with seed S (default 0).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from nares.complexity import macs
from nares.errors import ArchError, NaresError
from nares.space import N_ARCHS, Arch, ArchIndex, random_archs

ORDERS = ("largest_first", "smallest_first", "id")


class SweepError(NaresError):
    """A bad sweep request (selection, order, resources) or a sweep that could not finish."""


def _parse_ids(body: str) -> list[int]:
    ids: list[int] = []
    for part in filter(None, (p.strip() for p in body.split(","))):
        lo, _, hi = part.partition("-")
        try:
            a, b = int(lo), int(hi or lo)
        except ValueError:
            raise SweepError(f"bad arch-id range {part!r} in selection (expected e.g. ids:1-10,42)") from None
        if not 1 <= a <= b <= N_ARCHS:
            raise SweepError(f"arch-id range {part!r} is outside 1..{N_ARCHS} or reversed")
        ids.extend(range(a, b + 1))
    return ids


def select_archs(selection: str | Sequence[str], index: ArchIndex | None = None) -> list[tuple[int, Arch]]:
    """(arch_id, arch) pairs named by `selection`, each once, in arch-id order."""
    index = index or ArchIndex.default()
    if not isinstance(selection, str):
        selection = "list:" + ",".join(str(s) for s in selection)
    kind, _, body = selection.strip().partition(":")
    kind = kind.strip().lower()
    if kind == "all" and not body:
        ids = range(1, N_ARCHS + 1)
    elif kind == "ids":
        ids = _parse_ids(body)
    elif kind == "list":
        try:
            ids = [index.id_of(Arch.parse(s.strip())) for s in body.split(",") if s.strip()]
        except ArchError as e:
            raise SweepError(f"bad architecture in selection {selection!r}: {e}") from None
    elif kind == "sample":
        n_s, _, seed_s = body.partition("@")
        try:
            n, seed = int(n_s), int(seed_s or 0)
        except ValueError:
            raise SweepError(f"bad sample {body!r} in selection (expected sample:N or sample:N@SEED)") from None
        if not 1 <= n <= N_ARCHS:
            raise SweepError(f"sample size {n} is outside 1..{N_ARCHS}")
        ids = [index.id_of(a) for a in random_archs(n, seed)]
    else:
        raise SweepError(f"unknown selection {selection!r} (expected all, ids:A-B, list:ARCH,..., sample:N[@SEED])")
    unique = sorted(set(ids))
    if not unique:
        raise SweepError(f"selection {selection!r} names no architecture")
    return [(i, index.arch_of(i)) for i in unique]


def order_jobs(pairs: Iterable[tuple[int, Arch]], order: str, width_base: int = 16) -> list[tuple[int, Arch]]:
    """Sort (arch_id, arch) by cost: `largest_first` (most MACs first, so the long jobs never trail at the end),
    `smallest_first`, or `id`. Ties are broken by arch id, so the order is deterministic."""
    pairs = list(pairs)
    if order == "id":
        return sorted(pairs, key=lambda p: p[0])
    if order not in ORDERS:
        raise SweepError(f"unknown sweep order {order!r} (expected one of {', '.join(ORDERS)})")
    sign = -1 if order == "largest_first" else 1
    return sorted(pairs, key=lambda p: (sign * macs(p[1], width_base), sign * p[0]))
