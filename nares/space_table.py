"""The design-space table: one row per architecture with its id, coordinates, params and MACs."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from nares.errors import NaresError
from nares.io import atomic_write
from nares.space import COORD_COLUMNS, ArchIndex

SPACE_SCHEMA = pa.schema(
    [
        ("arch_id", pa.int32()),
        ("arch", pa.string()),
        *((c, pa.int8()) for c in COORD_COLUMNS),
        ("params", pa.int64()),
        ("macs", pa.int64()),
    ]
)


def space_table(index: ArchIndex | None = None, width_base: int = 16) -> pa.Table:
    """All 15,625 architectures ordered by arch_id."""
    from nares import complexity  # imports torch: keep it out of module import (tables use SPACE_SCHEMA)

    index = index or ArchIndex.default()
    rows = list(index)
    cols: dict[str, list] = {name: [] for name in SPACE_SCHEMA.names}
    for aid, a in rows:
        cols["arch_id"].append(aid)
        cols["arch"].append(str(a))
        for name, v in zip(COORD_COLUMNS, a.to_tuple(), strict=True):
            cols[name].append(v)
        cols["params"].append(complexity.params(a, width_base))
        cols["macs"].append(complexity.macs(a, width_base))
    return pa.table(cols, schema=SPACE_SCHEMA)


def write_space_table(out: str | Path, id_map: str | Path | None = None) -> int:
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise NaresError(f"--out {out}: extension must be .csv or .parquet")
    table = space_table(ArchIndex.from_jsonl(id_map) if id_map else None)
    with atomic_write(out) as fh:
        if suffix == ".csv":
            pacsv.write_csv(table, fh)
        else:
            pq.write_table(table, fh)
    return table.num_rows
