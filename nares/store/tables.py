"""The dataset's columnar tables (Parquet, explicit schemas) and their exact link to the published jsonl.

Every accuracy in these tables is a FRACTION in [0, 1]; `Params`/`MACs` are exact integer counts.
On disk a table is a folder `<root>/<table>/` of shards `part-NNN.parquet`, shard NNN holding the
architectures with `(arch_id - 1) // SHARD_ARCHS == NNN` (16 files per table for the whole space).
`write_tables` is an idempotent upsert: rows of the arch ids (or, for `manifest` and `ledger`, the
row keys) being written replace the stored ones; every file is replaced atomically under a lock.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from nares.io import atomic_write, exclusive_folder
from nares.records import (
    HISTORY_KEYS,
    HISTORY_PCT,
    TEST_KEYS,
    TEST_PCT,
    RecordError,
    count_from_published,
    fraction_from_pct,
    millions,
    pct_from_fraction,
    validate_record,
)
from nares.space_table import SPACE_SCHEMA
from nares.spaces.wrn import COORD_COLUMNS, JSONL_KEYS, Arch

SHARD_ARCHS = 1024
_F = pa.float64()

SCHEMAS: dict[str, pa.Schema] = {
    "architectures": SPACE_SCHEMA,
    "runs": pa.schema(
        [
            ("arch_id", pa.int32()),
            ("seed", pa.int64()),
            ("gpu_type", pa.string()),
            ("timestamp", pa.string()),
            ("training_time_gpu_days", _F),
            ("best_epoch", pa.int16()),
        ]
    ),
    "history": pa.schema([("arch_id", pa.int32()), ("epoch", pa.int16()), *((k, _F) for k in HISTORY_KEYS)]),
    "test_metrics": pa.schema(
        [
            ("arch_id", pa.int32()),
            ("test_clean_acc", _F),
            ("test_loss", _F),
            ("fgsm_acc", _F),
            ("fgsm_stable", _F),
            ("pgd_acc", _F),
            ("pgd_stable", _F),
            ("pgd_lip", _F),
            ("cw_acc", _F),
            ("cw_stable", _F),
            ("cw_lip", _F),
            ("aa_acc", _F),
            ("corrupt_acc", _F),
        ]
    ),
    "corruptions": pa.schema(
        [
            ("arch_id", pa.int32()),
            ("corruption", pa.string()),
            ("severity", pa.int8()),
            ("acc", _F),
            ("loss", _F),
        ]
    ),
    "manifest": pa.schema(
        [
            ("arch_id", pa.int32()),
            ("kind", pa.string()),
            ("key", pa.string()),
            ("sha256", pa.string()),
            ("size", pa.int64()),
            ("epoch", pa.int16()),
        ]
    ),
    "ledger": pa.schema(
        [
            ("arch_id", pa.int32()),
            ("checkpoint", pa.string()),
            ("metric", pa.string()),
            ("metric_version", pa.int32()),
            ("status", pa.string()),
            ("device", pa.string()),
            ("device_seconds", _F),  # wall time the device was held (synchronised on CUDA), any device
            ("started_at", pa.string()),
            ("finished_at", pa.string()),
            ("code_version", pa.string()),
            ("preset_hash", pa.string()),
        ]
    ),
}
# Write order: `manifest` last, so a manifest row implies the rest of that architecture is stored.
TABLES: tuple[str, ...] = (
    "architectures",
    "runs",
    "history",
    "test_metrics",
    "corruptions",
    "ledger",
    "manifest",
)
RECORD_TABLES: tuple[str, ...] = ("architectures", "runs", "history", "test_metrics", "corruptions")
# Rows replaced on upsert: whole architectures, except these tables, whose rows are keyed individually.
ROW_KEYS: dict[str, tuple[str, ...]] = {
    "manifest": ("arch_id", "kind"),
    "ledger": ("arch_id", "checkpoint", "metric", "metric_version", "started_at"),
}
# Published test_best key → test_metrics column.
TEST_COLUMNS: dict[str, str] = {k: (k[5:] if k.startswith("Linf_") else k) for k in TEST_KEYS}


class TableError(RecordError):
    """A table that is missing, malformed or inconsistent with the others."""


def empty_table(name: str) -> pa.Table:
    return SCHEMAS[_check_name(name)].empty_table()


def _check_name(name: str) -> str:
    if name not in SCHEMAS:
        raise TableError(f"unknown table {name!r} (tables: {', '.join(TABLES)})")
    return name


# ---------------------------------------------------------------- records ⇄ tables


def records_to_tables(records: Iterable[Mapping]) -> dict[str, pa.Table]:
    """Published-layout records (percent, millions) → the five record tables (fractions, exact counts)."""
    cols: dict[str, dict[str, list]] = {n: {f.name: [] for f in SCHEMAS[n]} for n in RECORD_TABLES}
    a, r, h, t, c = (cols[n] for n in RECORD_TABLES)
    seen: set[int] = set()
    for rec in records:
        validate_record(rec)
        aid = rec["arch_id"]
        if aid in seen:
            raise TableError(f"arch_id {aid} appears in more than one record")
        seen.add(aid)
        arch = Arch.parse(rec["arch"])
        a["arch_id"].append(aid)
        a["arch"].append(str(arch))
        for col, key in zip(COORD_COLUMNS, JSONL_KEYS, strict=True):
            a[col].append(rec["arch"][key])
        a["params"].append(count_from_published(rec["Params"], f"record {aid}: Params"))
        a["macs"].append(count_from_published(rec["MACs"], f"record {aid}: MACs"))
        tr, tb = rec["train"][0], rec["test_best"][0]
        r["arch_id"].append(aid)
        r["seed"].append(tr["seed"])
        r["gpu_type"].append(tr["gpu_type"])
        r["timestamp"].append(tr["timestamp"])
        r["training_time_gpu_days"].append(float(tr["training_time"]))
        r["best_epoch"].append(tr["best_epoch"])
        n = len(tr["train_loss"])
        h["arch_id"].extend([aid] * n)
        h["epoch"].extend(range(n))
        for key in HISTORY_KEYS:
            h[key].extend(tr[key])
        t["arch_id"].append(aid)
        for key, col in TEST_COLUMNS.items():
            t[col].append(tb[key])
        accs = []
        for name, sev in tb["corruptions"].items():
            for s, cell in sev.items():
                c["arch_id"].append(aid)
                c["corruption"].append(name)
                c["severity"].append(int(s))
                c["acc"].append(cell["acc"])
                c["loss"].append(cell["loss"])
                accs.append(cell["acc"])
        t["corrupt_acc"].append(math.fsum(accs) / len(accs) if accs else None)
    pct_columns = {
        "history": HISTORY_PCT,
        "test_metrics": {TEST_COLUMNS[k] for k in TEST_PCT} | {"corrupt_acc"},
        "corruptions": {"acc"},
    }
    out = {}
    for name in RECORD_TABLES:
        arrays = []
        for field in SCHEMAS[name]:
            values = cols[name][field.name]
            if field.name in pct_columns.get(name, ()):
                values = fraction_from_pct(
                    np.array([np.nan if v is None else v for v in values], dtype=np.float64)
                )
                arrays.append(pa.array(values, type=field.type, from_pandas=True))
            else:
                arrays.append(pa.array(values, type=field.type))
        out[name] = pa.Table.from_arrays(arrays, schema=SCHEMAS[name])
    return out


def _slices(arch_ids: np.ndarray) -> dict[int, slice]:
    """arch_id → the slice of its rows in a table whose rows are grouped by arch_id."""
    if len(arch_ids) == 0:
        return {}
    starts = np.flatnonzero(np.r_[True, arch_ids[1:] != arch_ids[:-1]])
    ends = np.r_[starts[1:], len(arch_ids)]
    out = {int(arch_ids[s]): slice(int(s), int(e)) for s, e in zip(starts, ends, strict=True)}
    if len(out) != len(starts):
        raise TableError("rows of one architecture are not contiguous; sort the table by arch_id")
    return out


def _column(table: pa.Table, name: str, pct: bool) -> list:
    col = table.column(name)
    if pct:
        arr = col.to_numpy(zero_copy_only=False).astype(np.float64)
        return pct_from_fraction(arr).tolist()
    return col.to_pylist()


def tables_to_records(tables: Mapping[str, pa.Table]) -> list[dict]:
    """The record tables → published-layout records, one per row of `architectures`, in its order.

    Exact inverse of `records_to_tables` for the records this project writes (see `nares.records`).
    """
    for name in RECORD_TABLES:
        if name not in tables:
            raise TableError(f"table {name!r} is needed to build records")
    arch_t = tables["architectures"]
    runs = {aid: i for i, aid in enumerate(tables["runs"].column("arch_id").to_pylist())}
    tests = {aid: i for i, aid in enumerate(tables["test_metrics"].column("arch_id").to_pylist())}
    hist = _sorted(tables["history"], ("arch_id", "epoch"))
    corr = _sorted(tables["corruptions"], ("arch_id",))
    h_slices = _slices(hist.column("arch_id").to_numpy())
    c_slices = _slices(corr.column("arch_id").to_numpy())
    h_cols = {k: _column(hist, k, k in HISTORY_PCT) for k in HISTORY_KEYS}
    h_epoch = hist.column("epoch").to_pylist()
    c_cols = {
        "corruption": corr.column("corruption").to_pylist(),
        "severity": corr.column("severity").to_pylist(),
        "acc": _column(corr, "acc", True),
        "loss": corr.column("loss").to_pylist(),
    }
    r_cols = {f.name: tables["runs"].column(f.name).to_pylist() for f in SCHEMAS["runs"]}
    t_cols = {col: _column(tables["test_metrics"], col, key in TEST_PCT) for key, col in TEST_COLUMNS.items()}
    a_cols = {f.name: arch_t.column(f.name).to_pylist() for f in SCHEMAS["architectures"]}
    records = []
    for i, aid in enumerate(a_cols["arch_id"]):
        if aid not in runs or aid not in tests or aid not in h_slices:
            missing = [
                n
                for n, ok in (
                    ("runs", aid in runs),
                    ("test_metrics", aid in tests),
                    ("history", aid in h_slices),
                )
                if not ok
            ]
            raise TableError(f"arch_id {aid} has no rows in {', '.join(missing)}")
        ri, ti, hs = runs[aid], tests[aid], h_slices[aid]
        if h_epoch[hs] != list(range(hs.stop - hs.start)):
            raise TableError(f"arch_id {aid}: history epochs are not 0..{hs.stop - hs.start - 1}")
        train = {
            "seed": r_cols["seed"][ri],
            "gpu_type": r_cols["gpu_type"][ri],
            "timestamp": r_cols["timestamp"][ri],
            "training_time": r_cols["training_time_gpu_days"][ri],
            "best_epoch": r_cols["best_epoch"][ri],
        }
        for k in HISTORY_KEYS:
            train[k] = h_cols[k][hs]
        test: dict = {key: t_cols[col][ti] for key, col in TEST_COLUMNS.items()}
        corruptions: dict[str, dict[str, dict[str, float]]] = {}
        cs = c_slices.get(aid)
        if cs is not None:
            for j in range(cs.start, cs.stop):
                corruptions.setdefault(c_cols["corruption"][j], {})[str(c_cols["severity"][j])] = {
                    "acc": c_cols["acc"][j],
                    "loss": c_cols["loss"][j],
                }
        test["corruptions"] = corruptions
        records.append(
            {
                "arch_id": aid,
                "arch": dict(
                    zip(JSONL_KEYS, (a_cols[k][i] for k in COORD_COLUMNS), strict=True)
                ),
                "MACs": millions(a_cols["macs"][i]),
                "Params": millions(a_cols["params"][i]),
                "train": [train],
                "test_best": [test],
            }
        )
    return records


def iter_records(tables: Mapping[str, pa.Table], *, chunk: int = 1024) -> Iterator[dict]:
    """Like `tables_to_records`, `chunk` architectures at a time (bounded memory for large exports)."""
    arch_t = tables["architectures"]
    for start in range(0, arch_t.num_rows, chunk):
        ids = arch_t.column("arch_id").slice(start, chunk)
        part = {"architectures": arch_t.slice(start, chunk)}
        for name in RECORD_TABLES[1:]:
            tbl = tables[name]
            part[name] = tbl.filter(pc.is_in(tbl.column("arch_id"), value_set=ids))
        yield from tables_to_records(part)


def _sorted(table: pa.Table, keys: tuple[str, ...]) -> pa.Table:
    """Rows sorted by `keys`, stable (rows that tie keep their order)."""
    if table.num_rows == 0:
        return table
    order = pc.sort_indices(table, sort_keys=[(k, "ascending") for k in keys])  # stable
    return table.take(order)


# ---------------------------------------------------------------- disk


@contextmanager
def tables_lock(root: str | Path) -> Iterator[None]:
    """An exclusive inter-process lock on a tables folder (held while shards are rewritten); waits for
    another holder, then clears the temp files of writers killed there."""
    with exclusive_folder(root, wait=True):
        yield


def shard_path(root: Path, name: str, shard: int) -> Path:
    return root / name / f"part-{shard:03d}.parquet"


def _conform(name: str, table: pa.Table) -> pa.Table:
    schema = SCHEMAS[name]
    missing = [f.name for f in schema if f.name not in table.column_names]
    if missing:
        raise TableError(f"table {name!r} lacks columns {missing}")
    try:
        return table.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise TableError(f"table {name!r} does not fit its schema ({e})") from None


def _key_strings(table: pa.Table, keys: tuple[str, ...]) -> list[str]:
    cols = [table.column(k).to_pylist() for k in keys]
    return [json.dumps(row) for row in zip(*cols, strict=True)]


def _upsert(old: pa.Table, new: pa.Table, name: str) -> pa.Table:
    if old.num_rows:
        if name in ROW_KEYS:
            drop = set(_key_strings(new, ROW_KEYS[name]))
            keep = pa.array([k not in drop for k in _key_strings(old, ROW_KEYS[name])], type=pa.bool_())
        else:
            keep = pc.invert(pc.is_in(old.column("arch_id"), value_set=pc.unique(new.column("arch_id"))))
        old = old.filter(keep)
    merged = pa.concat_tables([old, new]) if old.num_rows else new
    return _sorted(merged, ("arch_id",))


def write_tables(tables: Mapping[str, pa.Table], root: str | Path) -> None:
    """Upsert the given tables into `root` (idempotent: writing the same rows twice changes nothing)."""
    root = Path(root)
    names = [n for n in TABLES if n in tables]
    for n in tables:
        _check_name(n)
    with tables_lock(root):
        for name in names:
            new = _conform(name, tables[name])
            if new.num_rows == 0:
                continue
            ids = new.column("arch_id").to_numpy()
            if ids.min() < 1:
                raise TableError(f"table {name!r} holds arch_id {int(ids.min())} (ids start at 1)")
            shards = (ids - 1) // SHARD_ARCHS
            for shard in np.unique(shards):
                part = new.filter(pa.array(shards == shard))
                path = shard_path(root, name, int(shard))
                old = (
                    pq.read_table(path, schema=SCHEMAS[name])
                    if path.exists()
                    else SCHEMAS[name].empty_table()
                )
                merged = _upsert(old, part, name)
                with atomic_write(path) as fh:
                    pq.write_table(merged, fh, compression="zstd")


def read_tables(root: str | Path, names: Iterable[str] | None = None) -> dict[str, pa.Table]:
    """The tables stored under `root` (all by default), shards concatenated in arch_id order.

    A table never written is returned empty, with its schema.
    """
    root = Path(root)
    out = {}
    for name in names or TABLES:
        _check_name(name)
        files = sorted((root / name).glob("part-*.parquet"))
        if not files:
            out[name] = empty_table(name)
            continue
        try:
            parts = [pq.read_table(f, schema=SCHEMAS[name]) for f in files]
        except (pa.ArrowInvalid, OSError) as e:
            raise TableError(f"cannot read table {name!r} under {root} ({e})") from None
        out[name] = pa.concat_tables(parts)
    return out


def import_jsonl(path: str | Path, tables_root: str | Path) -> int:
    """Read a published-layout jsonl into a tables folder: its long rows (losslessly, `nares.exporters.nares_jsonl`)
    and, derived from them, the record tables; returns the number of records."""
    from nares.exporters.nares_jsonl import iter_long_records, read_jsonl_long
    from nares.results.store import write_results

    long = read_jsonl_long(path)
    tables = records_to_tables(iter_long_records(long))  # validates every record before anything is written
    write_results(long, tables_root)
    write_tables(tables, tables_root)
    return tables["architectures"].num_rows
