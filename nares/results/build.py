"""Build long-format tables column by column: strings as dictionary codes, numbers as numpy arrays."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from nares.results.schema import LONG_SCHEMA

_STRING = [f.name for f in LONG_SCHEMA if pa.types.is_dictionary(f.type)]


class LongBuilder:
    """Accumulates blocks of rows; `table()` returns one `LONG_SCHEMA` table.

    `add(n, values, metric=..., key=..., **constants)`: n rows; `values` (n floats); every other column is
    either one value for the whole block or a sequence of n values. String columns are coded through one
    dictionary per column, so a block of a million rows costs a few numpy operations."""

    def __init__(self) -> None:
        self._dicts: dict[str, dict[str | None, int]] = {c: {} for c in _STRING}
        self._blocks: list[dict[str, np.ndarray]] = []

    def code(self, column: str, value: str | None) -> int:
        d = self._dicts[column]
        if value not in d:
            d[value] = len(d)
        return d[value]

    def codes(self, column: str, values: Iterable[str | None]) -> np.ndarray:
        return np.fromiter((self.code(column, v) for v in values), dtype=np.int32)

    def add(self, n: int, values: Any, **cols: Any) -> None:
        if n == 0:
            return
        block = {"value": np.asarray(values, dtype=np.float64).reshape(n)}
        for name, v in cols.items():
            if name in self._dicts:
                if isinstance(v, np.ndarray) and v.dtype == np.int32:
                    block[name] = v  # codes already
                elif isinstance(v, str) or v is None:
                    block[name] = np.full(n, self.code(name, v), dtype=np.int32)
                else:
                    block[name] = self.codes(name, v)
            elif v is not None:
                block[name] = np.full(n, v) if np.ndim(v) == 0 else np.asarray(v)
        block["_n"] = np.array([n])
        self._blocks.append(block)

    def table(self) -> pa.Table:
        n_rows = int(sum(int(b["_n"][0]) for b in self._blocks))
        arrays = []
        for field in LONG_SCHEMA:
            name = field.name
            if name in self._dicts:
                arrays.append(self._dict_column(name, n_rows))
            else:
                arrays.append(self._numeric_column(name, field.type, n_rows))
        return pa.Table.from_arrays(arrays, schema=LONG_SCHEMA)

    def _dict_column(self, name: str, n_rows: int) -> pa.Array:
        d = self._dicts[name]
        null = d.get(None)
        parts = [b.get(name) for b in self._blocks]
        if any(p is None for p in parts):
            null = self.code(name, None) if null is None else null
            d = self._dicts[name]
        idx = np.concatenate([p if p is not None else np.full(int(b["_n"][0]), null, dtype=np.int32)
                              for p, b in zip(parts, self._blocks, strict=True)]) if parts else np.zeros(0, np.int32)
        words = list(d)
        mask = None if null is None else idx == null
        indices = pa.array(idx, type=pa.int32(), mask=mask)
        dictionary = pa.array(["" if w is None else w for w in words], type=pa.string())
        return pa.DictionaryArray.from_arrays(indices, dictionary)

    def _numeric_column(self, name: str, typ: pa.DataType, n_rows: int) -> pa.Array:
        parts = [b.get(name) for b in self._blocks]
        if all(p is None for p in parts):
            return pa.nulls(n_rows, type=typ)
        dtype = np.float64 if pa.types.is_floating(typ) else np.int64
        sizes = [int(b["_n"][0]) for b in self._blocks]
        vals = np.concatenate([np.zeros(k, dtype) if p is None else np.asarray(p, dtype=dtype)
                               for p, k in zip(parts, sizes, strict=True)])
        mask = None
        if any(p is None for p in parts):
            mask = np.concatenate([np.full(k, p is None) for p, k in zip(parts, sizes, strict=True)])
        return pa.array(vals, type=typ, mask=mask)


def concat(tables: Sequence[pa.Table]) -> pa.Table:
    """One table from several long tables (dictionaries unified)."""
    if not tables:
        return LONG_SCHEMA.empty_table()
    return pa.concat_tables(tables).unify_dictionaries().combine_chunks()
