"""The long results table on disk: Parquet shards `results/part-NNN.parquet` by arch_id, as the wide tables
(`nares.store.tables.SHARD_ARCHS` architectures per shard); `write_results` upserts whole architectures under the tables' lock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from nares.io import atomic_write
from nares.results.build import concat
from nares.results.schema import LONG_SCHEMA

RESULTS_TABLE = "results"
SHARD_ARCHS = 1024  # = nares.store.tables.SHARD_ARCHS


def shard_path(root: Path, shard: int) -> Path:
    return Path(root) / RESULTS_TABLE / f"part-{shard:03d}.parquet"


def write_results(table: pa.Table, root: str | Path) -> None:
    """Upsert `table` into `root`: the rows of each (dataset, space, arch_id) written replace the stored ones."""
    from nares.store.tables import tables_lock

    root = Path(root)
    if table.num_rows == 0:
        return
    with tables_lock(root):
        _write(table, root)


def _write(table: pa.Table, root: Path) -> None:
    ids = table.column("arch_id").to_numpy()
    shards = (ids - 1) // SHARD_ARCHS
    for shard in np.unique(shards):
        new = table.filter(pa.array(shards == shard))
        path = shard_path(root, int(shard))
        if path.exists():
            old = pq.read_table(path, schema=LONG_SCHEMA)
            new_keys = set(zip(*(new.column(c).to_pylist() for c in ("dataset", "space", "arch_id")), strict=True))
            old_keys = zip(*(old.column(c).to_pylist() for c in ("dataset", "space", "arch_id")), strict=True)
            keep = pa.array([k not in new_keys for k in old_keys])
            new = concat([old.filter(keep), new])
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path, "wb") as fh:
            pq.write_table(new, fh)


def iter_shards(root: str | Path) -> Iterator[pa.Table]:
    """The stored long rows under `root`, one shard at a time in ascending arch_id ranges (an architecture's rows
    lie whole in one shard)."""
    folder = Path(root) / RESULTS_TABLE
    for path in sorted(folder.glob("part-*.parquet")) if folder.is_dir() else []:
        yield pq.read_table(path, schema=LONG_SCHEMA)


def read_results(root: str | Path) -> pa.Table:
    """Every stored long row under `root` (an empty table when none)."""
    return concat(list(iter_shards(root)))
