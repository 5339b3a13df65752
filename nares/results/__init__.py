"""Long-format results, the source of truth of every value the factory computes: the schema and units
(`nares.results.schema`), builders, the rows of a run folder (`run_rows`), the sharded table on disk
(`write_results`, `read_results`) and `filter_rows`.

Published layouts are exporters of this table (`nares.exporters`). Must not import Prefect, Ray, flows,
tasks or the app; imports torch only through the evaluator when reading a run folder's cells.
"""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa
import pyarrow.compute as pc

from nares.results.build import LongBuilder, concat
from nares.results.run import run_rows
from nares.results.schema import (
    LONG_COLUMNS,
    LONG_SCHEMA,
    SHOWN_COLUMNS,
    TRAIN,
    metric_name,
    unit_of,
    wide_column,
)


def filter_rows(table: pa.Table, *, arch: Iterable[int] | None = None, evaluation: Iterable[str] | None = None,
                metric: Iterable[str] | None = None) -> pa.Table:
    """The rows of `table` whose arch_id, evaluation and metric are among the given ones (None: any)."""
    mask = None
    for column, wanted in (("arch_id", arch), ("evaluation", evaluation), ("metric", metric)):
        if wanted is None:
            continue
        col = table.column(column)
        if pa.types.is_dictionary(col.type):
            col = col.cast(pa.string())
        m = pc.is_in(col, value_set=pa.array(list(wanted), type=col.type))
        mask = m if mask is None else pc.and_(mask, m)
    return table if mask is None else table.filter(mask)


__all__ = ["LONG_COLUMNS", "LONG_SCHEMA", "SHOWN_COLUMNS", "TRAIN", "LongBuilder", "concat", "filter_rows",
           "metric_name", "run_rows", "unit_of", "wide_column"]
