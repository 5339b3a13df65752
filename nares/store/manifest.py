"""Queries of the manifest table (one row per stored checkpoint: arch_id, kind, key, sha256, ...): where a
run's checkpoints are in the object store, and fetching one into a run folder.

The completeness queries over manifest, runs and test tables are `nares.store.ingest.complete_ids` /
`is_complete`. Must not import torch, Prefect or Ray.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from nares.errors import DataError

Objects = dict[tuple[int, str], tuple[str, str]]


def checkpoint_objects(tables_root: str | Path) -> Objects:
    """(arch_id, kind) → (key, sha256) of every manifest row (the first row where one repeats)."""
    from nares.store.tables import read_tables

    m = read_tables(tables_root, ["manifest"])["manifest"]
    out: Objects = {}
    for aid, kind, key, sha in zip(*(m.column(c).to_pylist() for c in ("arch_id", "kind", "key", "sha256")),
                                   strict=True):
        out.setdefault((aid, kind), (key, sha))
    return out


def ensure_checkpoint(store, objects: Callable[[], Objects], arch_id: int, kind: str, run: Path) -> Path:
    """The run folder's `checkpoints/<kind>.pt`, fetched (verified) from the object store when it is not there
    (another machine trained it); `objects()` is the manifest lookup (`checkpoint_objects`, read when first
    needed). A checkpoint the manifest lacks is one `DataError` line."""
    dest = run / "checkpoints" / f"{kind}.pt"
    if dest.exists():
        return dest
    found = objects().get((arch_id, kind))
    if found is None:
        raise DataError(f"no `{kind}` checkpoint of arch id {arch_id} in the manifest")
    store.get_file(found[0], dest, found[1])
    return dest
