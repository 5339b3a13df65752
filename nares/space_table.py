"""The design-space table: one row per architecture of a search space with its id, string, coordinates
(the space's `coord_schema`), params and MACs."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from nares.errors import NaresError
from nares.io import atomic_write
from nares.spaces import SearchSpace, SpaceIndex, get_space
from nares.spaces.wrn import SPACE as WRN


def space_schema(space: SearchSpace) -> pa.Schema:
    """arch_id, arch, the space's coordinate columns, params, macs; and `representative_id` (the arch_id of the
    architecture trained for this one's isomorphism class) for spaces with classes (`has_representatives`)."""
    rep = [("representative_id", pa.int32())] if space.has_representatives else []
    return pa.schema([("arch_id", pa.int32()), ("arch", pa.string()), *space.coord_schema,
                      ("params", pa.int64()), ("macs", pa.int64()), *rep])


SPACE_SCHEMA = space_schema(WRN)  # the WRN space's table (d1 … w3)


def space_table(index: SpaceIndex | None = None, width_base: int | None = None,
                space: SearchSpace | None = None) -> pa.Table:
    """Every architecture of `space` (default WRN) ordered by arch_id; complexity at model scale `width_base`
    (default: the space's `default_scale`, 16 for WRN)."""
    space = space or (index.space if index is not None else WRN)
    index = index or space.index()
    scale = space.default_scale if width_base is None else width_base
    schema = space_schema(space)
    coord_names = [c for c, _ in space.coord_schema]
    cols: dict[str, list] = {name: [] for name in schema.names}
    for aid, a in index:
        cols["arch_id"].append(aid)
        cols["arch"].append(space.format(a))
        coords = space.coords(a)
        for name in coord_names:
            cols[name].append(coords[name])
        p, m = space.complexity(a, scale)
        cols["params"].append(p)
        cols["macs"].append(m)
        if space.has_representatives:
            cols["representative_id"].append(index.id_of(space.canonical(a)))
    return pa.table(cols, schema=schema)


def write_table(table: pa.Table, out: str | Path) -> int:
    """Write `table` atomically as CSV or Parquet (by `out`'s extension); returns its row count."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise NaresError(f"--out {out}: extension must be .csv or .parquet")
    with atomic_write(out) as fh:
        if suffix == ".csv":
            pacsv.write_csv(table, fh)
        else:
            pq.write_table(table, fh)
    return table.num_rows


def write_space_table(out: str | Path, id_map: str | Path | None = None, space: str | SearchSpace = "wrn",
                      width_base: int | None = None) -> int:
    if Path(out).suffix.lower() not in (".csv", ".parquet"):
        raise NaresError(f"--out {out}: extension must be .csv or .parquet")  # before the table is built
    space = get_space(space) if isinstance(space, str) else space
    return write_table(space_table(space.index(id_map) if id_map else None, width_base, space), out)
