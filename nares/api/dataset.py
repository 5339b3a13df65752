"""`Dataset`: query a NARes release (or a published-layout `cifar10.jsonl`) by architecture and metric.

Loading is columnar and lazy: opening reads one summary row per architecture (every `Metric` at
its definition point); per-epoch curves, corruptions and full records are read from the Parquet
tables only for the architectures asked for. Every value returned is in the published units
(percent accuracies, Params/MACs in millions, raw losses; see `Metric`). SQL (`Dataset.sql`) sees
the internal tables, whose accuracies are fractions and whose params/macs are exact counts.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from nares.api import cache
from nares.api.checkpoints import (
    CheckpointError,
    Fetcher,
    fetch_verified,
    file_fetcher,
    load_verified_model,
    local_fetcher,
    release_checkpoint,
    store_fetcher,
)
from nares.api.jsonl import ParseReport
from nares.api.metrics import Metric, MetricError, get_metric
from nares.api.summary import CORRUPT_PCT, build_summary, read_table_dir, table_files
from nares.errors import ArchError, DataError, shown
from nares.spaces.base import SearchSpace
from nares.spaces.wrn import COORD_COLUMNS, SPACE, Arch

ArchLike = Arch | str | Sequence[int] | dict | int
RECORD_TABLES = ("architectures", "runs", "history", "test_metrics", "corruptions")
ROW_GROUP_ROWS = 65_536  # cached jsonl tables: row groups small enough for arch_id pruning on a query


def _int_column(col: pa.ChunkedArray) -> np.ndarray:
    """A null-free integer column as numpy, read from its buffers (`to_numpy` would import pandas,
    ~0.3 s of a cached open)."""
    dtype = np.dtype(col.type.to_pandas_dtype())
    parts = [np.frombuffer(c.buffers()[1], dtype=dtype, count=len(c), offset=c.offset * dtype.itemsize)
             for c in col.chunks]
    return np.concatenate(parts) if len(parts) != 1 else parts[0]


class Dataset:
    """A NARes table of architectures. Open with `open_dataset` (release version, folder or jsonl)."""

    def __init__(self, tables_root: Path, summary: pa.Table, source: str, report: ParseReport | None = None):
        self.root = Path(tables_root)
        self.source = source
        self.summary = summary
        self.report = report or ParseReport(n_records=summary.num_rows)  # odd values read from a jsonl
        self._ids = _int_column(summary.column("arch_id"))
        self._row = dict(zip(self._ids.tolist(), range(len(self._ids)), strict=True))
        self._values: dict[Metric, np.ndarray] = {}

    @property
    def space(self) -> SearchSpace:
        """The data set's search space (the WRN macro space: the published layout and its tables)."""
        return SPACE

    @cached_property
    def _by_arch(self) -> dict[str, int]:
        return dict(zip(self.summary.column("arch").to_pylist(), self._ids.tolist(), strict=True))

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, arch: object) -> bool:
        try:
            self.id_of(arch)  # type: ignore[arg-type]
        except ArchError:
            return False
        return True

    def __repr__(self) -> str:
        return f"Dataset({len(self)} architectures from {self.source})"

    # ------------------------------------------------------------ architectures

    @property
    def arch_ids(self) -> np.ndarray:
        """The arch ids present, ascending (the row order of every column this object returns)."""
        return self._ids

    def archs(self, arch_ids: Iterable[int] | None = None) -> list[Arch]:
        strings = self.summary.column("arch").to_pylist()
        rows = range(len(self)) if arch_ids is None else (self._row[int(i)] for i in arch_ids)
        return [Arch.parse(strings[r]) for r in rows]

    def id_of(self, arch: ArchLike) -> int:
        """The arch_id of an Arch, `D1-W1-D2-W2-D3-W3` string, 6-tuple, published `arch` dict or arch_id."""
        if isinstance(arch, int | np.integer) and not isinstance(arch, bool):
            if int(arch) not in self._row:
                raise ArchError(f"arch_id {arch} is not in this dataset ({self.source})")
            return int(arch)
        if not isinstance(arch, Arch) and callable(getattr(arch, "to_tuple", None)):
            arch = arch.to_tuple()  # an Arch of another package (the official NARes code's)
        key = "-".join(map(str, Arch.parse(arch).to_tuple()))
        if key not in self._by_arch:
            raise ArchError(f"architecture {key} is not in this dataset ({self.source})")
        return self._by_arch[key]

    def arch_of(self, arch: ArchLike) -> Arch:
        return Arch.parse(self.summary.column("arch")[self._row[self.id_of(arch)]].as_py())

    # ------------------------------------------------------------ metrics

    def values(self, metric: Metric | str) -> np.ndarray:
        """`metric` of every architecture (order: `arch_ids`), published units; NaN where absent."""
        m = Metric.parse(metric)
        if m not in self._values:
            col = self.summary.column(m.column)
            if m is Metric.TEST_CORRUPT_ACC and CORRUPT_PCT in self.summary.column_names:
                arr = self.summary.column(CORRUPT_PCT).to_numpy(zero_copy_only=False).astype(np.float64)
            elif m.unit == "epoch":
                arr = col.to_numpy().astype(np.int64)
            else:
                arr = col.to_numpy(zero_copy_only=False).astype(np.float64)
                if m.unit == "percent":
                    from nares.records import pct_from_fraction

                    arr = pct_from_fraction(arr)
                elif m.unit == "millions":
                    arr = arr / 1e6
            arr.setflags(write=False)
            self._values[m] = arr
        return self._values[m]

    def metric(self, arch: ArchLike, metric: Metric | str) -> float | int | None:
        """One metric of one architecture (published units; None where absent). Test metrics allowed."""
        v = self.values(metric)[self._row[self.id_of(arch)]]
        if isinstance(v, np.integer):
            return int(v)
        return None if np.isnan(v) else float(v)

    @staticmethod
    def _objective_metric(metric: Metric | str) -> Metric:
        """`metric` as a search objective: refuses TEST_* metrics so that searches cannot read the test set."""
        m = Metric.parse(metric)
        if m.is_test:
            raise MetricError(f"{m.value} is a test metric; a search objective must not read the test set")
        return m

    def get_objective(self, arch: ArchLike, metric: Metric | str = Metric.VAL_PGD_ACC) -> float:
        """A search objective of one architecture (TEST_* metrics refused, see `objective_values`)."""
        return self.metric(arch, self._objective_metric(metric))  # type: ignore[return-value]

    def objective_values(self, metric: Metric | str = Metric.VAL_PGD_ACC) -> np.ndarray:
        """A search objective of every architecture (order: `arch_ids`): `values`, refusing TEST_* metrics
        so that searches cannot read the test set."""
        return self.values(self._objective_metric(metric))

    @staticmethod
    def get_metric(record: dict, metric: Metric | str) -> float | int | None:
        """`metric` of a published-layout record (as returned by `query`), in the record's units."""
        return get_metric(record, metric)

    # ------------------------------------------------------------ records and curves

    def _rows(self, name: str, ids: list[int], columns: list[str] | None = None) -> pa.Table:
        return read_table_dir(self.root, name, columns, filters=[("arch_id", "in", ids)])

    def batch_query(self, archs: Iterable[ArchLike]) -> list[dict]:
        """Published-layout records (percent, millions) of `archs`, in the order asked."""
        from nares.store.tables import tables_to_records

        ids = [self.id_of(a) for a in archs]
        if not ids:
            return []
        uniq = sorted(set(ids))
        tables = {}
        for name in RECORD_TABLES:
            try:
                tables[name] = self._rows(name, uniq)
            except DataError:
                if name != "corruptions":
                    raise
                from nares.store.tables import empty_table

                tables[name] = empty_table(name)
        tables["architectures"] = tables["architectures"].sort_by("arch_id")
        by_id = {r["arch_id"]: r for r in tables_to_records(tables)}
        if self.report.odd:
            for r in by_id.values():
                _missing_as_none(r)
        return [by_id[i] for i in ids]

    def query(self, arch: ArchLike) -> dict:
        """The published-layout record of one architecture."""
        return self.batch_query([arch])[0]

    def curves(self, arch: ArchLike) -> dict[str, list[float]]:
        """Per-epoch logs of one architecture (epoch 0 first): accuracies in percent, losses/Lipschitz raw."""
        from nares.records import HISTORY_KEYS, HISTORY_PCT, pct_from_fraction

        h = self._rows("history", [self.id_of(arch)]).sort_by("epoch")
        return {k: (pct_from_fraction(h.column(k).to_numpy()) if k in HISTORY_PCT else h.column(k).to_numpy()).tolist()
                for k in HISTORY_KEYS}

    # ------------------------------------------------------------ filters, top-k, optimum

    def mask(self, *, min_params: float | None = None, max_params: float | None = None,
             min_macs: float | None = None, max_macs: float | None = None, **coords: int | Iterable[int]) -> np.ndarray:
        """Boolean row mask. Bounds are inclusive raw counts (`max_macs=10e9` = 10 GMACs); `d1=4`,
        `w3=(12, 14)` keep architectures whose coordinate takes one of the given values. Bad filters
        (see `check_filters`) are refused before any filtering."""
        bounds = {"min_params": min_params, "max_params": max_params, "min_macs": min_macs, "max_macs": max_macs}
        coords = check_filters(bounds, coords)
        keep = np.ones(len(self), dtype=bool)
        for col, lo, hi in (("params", min_params, max_params), ("macs", min_macs, max_macs)):
            arr = self.summary.column(col).to_numpy()
            if lo is not None:
                keep &= arr >= lo
            if hi is not None:
                keep &= arr <= hi
        for name, vals in coords.items():
            keep &= np.isin(self.summary.column(name).to_numpy(), vals)
        return keep

    def filter(self, **bounds: Any) -> list[Arch]:
        """Architectures passing `mask(**bounds)`, ascending arch_id."""
        return self.archs(self._ids[self.mask(**bounds)])

    def top(self, metric: Metric | str, k: int = 10, *, best_first: bool = True, **bounds: Any) -> list[tuple[Arch, float]]:
        """The k best architectures by `metric` among those passing the filters (ties: lower arch_id first).

        "Best" is highest for accuracies and lowest for losses, Lipschitz, costs and epochs
        (`Metric.higher_is_better`); `best_first=False` lists the worst first. NaNs are skipped.
        """
        m = Metric.parse(metric)
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise DataError(f"k={shown(k)} must be a positive integer (how many architectures to list)")
        vals = self.values(m).astype(np.float64)
        rows = np.flatnonzero(self.mask(**bounds) & ~np.isnan(vals))
        key = -vals[rows] if m.higher_is_better == best_first else vals[rows]
        order = rows[np.lexsort((self._ids[rows], key))][: max(0, k)]
        archs = self.archs(self._ids[order])
        return [(a, self.metric(int(i), m)) for a, i in zip(archs, self._ids[order], strict=True)]  # type: ignore[misc]

    def optimum(self, metric: Metric | str, **bounds: Any) -> tuple[Arch, float]:
        """The best architecture by `metric` and its value (see `top`)."""
        best = self.top(metric, 1, **bounds)
        if not best:
            raise DataError(f"no architecture passes the filters {bounds}")
        return best[0]

    # ------------------------------------------------------------ SQL, frames

    def sql(self, query: str):
        """Run DuckDB SQL over the views `summary` (per-architecture metrics) and the store's tables
        (`architectures`, `runs`, `history`, `test_metrics`, `corruptions`, `manifest`); internal
        units (fractions, counts). Returns a pyarrow Table."""
        import duckdb

        con = duckdb.connect()
        try:
            con.register("summary", self.summary)
            for name in (*RECORD_TABLES, "manifest"):
                files = ", ".join("'" + str(f).replace("'", "''") + "'" for f in table_files(self.root, name))
                if files:
                    con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet([{files}])")
            rel = con.sql(query)
            return rel.to_arrow_table() if rel is not None else pa.table({})
        except duckdb.Error as e:
            raise DataError(f"SQL failed: {str(e).splitlines()[0]}") from None
        finally:
            con.close()

    def frame(self, metrics: Iterable[Metric | str] | None = None):
        """A pandas DataFrame: arch_id, arch, coordinates and the metrics (all by default), published units."""
        import pandas as pd

        cols: dict[str, Any] = {c: self.summary.column(c).to_numpy() for c in ("arch_id", *COORD_COLUMNS)}
        cols["arch"] = self.summary.column("arch").to_pylist()
        for m in map(Metric.parse, metrics or list(Metric)):
            cols[m.value] = self.values(m)
        return pd.DataFrame(cols)

    # ------------------------------------------------------------ checkpoints

    def checkpoint_entry(self, arch: ArchLike, checkpoint: str = "best") -> dict:
        """The manifest row (kind, key, sha256, size, epoch) of one checkpoint of `arch`."""
        aid = self.id_of(arch)
        try:
            rows = self._rows("manifest", [aid]).filter(pc.equal(pc.field("kind"), checkpoint)).to_pylist()
        except DataError:
            raise CheckpointError(f"this dataset ({self.source}) has no checkpoint manifest") from None
        if not rows:
            raise CheckpointError(f"no {checkpoint!r} checkpoint of {self.arch_of(aid)} in the manifest")
        return rows[-1]

    def load_model(self, arch: ArchLike, checkpoint: str = "best", *, fetch: Fetcher | None = None,
                   width_base: int | None = None):
        """The trained PreActWRN of `arch` (eval mode) with weights verified against the manifest's sha256.

        `fetch(key, dest)` downloads an object (`store_fetcher`, `s3_fetcher`, `local_fetcher`). By default
        objects come from the release folder's DVC-pulled `checkpoints/<arch>/<kind>.pt`, else `$NARES_OBJECTS_DIR`
        or the release folder's `objects/` when present, else from the project's object store
        (`nares.store.objects`). Files are cached by sha256.
        """
        entry = self.checkpoint_entry(arch, checkpoint)
        pulled = release_checkpoint(self.root.parent, self.arch_of(arch), checkpoint) if fetch is None else None
        if pulled is not None:  # `dvc pull releases/<V>/checkpoints/<arch>` put it here (checked all the same)
            fetch = file_fetcher(pulled)
        elif fetch is None:
            local = os.environ.get("NARES_OBJECTS_DIR") or self.root.parent / "objects"
            fetch = local_fetcher(local) if Path(local).is_dir() else store_fetcher()
        path = fetch_verified(fetch, entry["key"], entry["sha256"], cache.cache_root() / "checkpoints")
        return load_verified_model(path, self.arch_of(arch), width_base)


def check_filters(bounds: dict[str, Any], coords: dict[str, Any], label=lambda key: key) -> dict[str, list[int]]:
    """Refuse a bad filter in one line naming it (`label(key)`), its value and what is allowed: a bound
    that is not a finite non-negative number, an unknown coordinate, a value outside DEPTHS/WIDTHS.
    Returns the coordinate filters as {column: [values]}."""
    import math

    from nares.spaces.wrn import DEPTHS, WIDTHS

    for key, v in bounds.items():
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, int | float | np.number) or not math.isfinite(v) or v < 0:
            raise DataError(f"{label(key)}={shown(v)} is not allowed: give a finite non-negative number")
    out = {}
    for name, allowed in coords.items():
        col = str(name).lower()
        if col not in COORD_COLUMNS:
            raise ArchError(f"unknown filter {shown(name)} (filters: min_/max_params, min_/max_macs, "
                            f"{', '.join(COORD_COLUMNS)})")
        vals = [allowed] if isinstance(allowed, int | np.integer) else list(allowed)
        choices = DEPTHS if col.startswith("d") else WIDTHS
        bad = [v for v in vals if isinstance(v, bool) or not isinstance(v, int | np.integer) or v not in choices]
        if bad or not vals:
            raise ArchError(f"{label(col)}={shown(bad[0] if bad else vals)} is not allowed: "
                            f"{col} takes values among {list(choices)}")
        out[col] = [int(v) for v in vals]
    return out


# ---------------------------------------------------------------- opening

def _summary_for(root: Path) -> pa.Table:
    files = [f for name in ("architectures", "runs", "history", "test_metrics") for f in table_files(root, name)]
    target = cache.cache_root() / "summary" / f"{cache.folder_fingerprint(files)}.parquet"
    if target.is_file():
        try:
            return pq.ParquetFile(target).read()  # not read_table: it imports pyarrow.dataset (and pandas)
        except (pa.ArrowInvalid, OSError):
            pass
    summary = build_summary(root)
    _write_parquet(summary, target)
    return summary


def _write_parquet(table: pa.Table, target: Path) -> None:
    from nares.io import atomic_write

    try:
        with atomic_write(target) as fh:
            pq.write_table(table, fh)
    except OSError:
        pass  # a read-only cache only costs speed


def _tables_root(folder: Path) -> Path | None:
    for cand in (folder, folder / "tables"):
        if table_files(cand, "architectures"):
            return cand
    return None


JSONL_FORMAT = "v2"  # cache entry layout: tables/<name>.parquet, summary.parquet, report.json


def _open_jsonl(path: Path, strict: bool = False) -> Dataset:
    """Parse a published-layout jsonl once into Parquet tables in the user cache (keyed by sha256).

    Odd values (see `nares.api.jsonl`) are kept and summarised in one line on stderr; `strict`
    refuses them. The parse report is cached with the tables, so a reopen says the same."""
    import json
    import sys

    from nares.api.jsonl import read_jsonl_tables

    if not path.is_file():
        raise DataError(f"data file {path} does not exist")
    if path.stat().st_size == 0:
        raise DataError(f"data file {path} holds no records")
    digest = cache.known_sha256(path)
    entry = cache.jsonl_entry(f"{digest}.{JSONL_FORMAT}") if digest else None
    if entry is None or not (entry / "summary.parquet").is_file():
        stat = path.stat()
        parsed = read_jsonl_tables(path, strict=strict)  # hashes the file while reading it
        cache.remember_sha256(path, parsed.sha256, stat)
        entry = cache.jsonl_entry(f"{parsed.sha256}.{JSONL_FORMAT}")
        report, summary = parsed.report, parsed.summary()
        tmp = entry.with_name(f"{entry.name}.{os.getpid()}.partial")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            if (entry / "summary.parquet").is_file():  # the same content, cached under another name
                raise FileExistsError
            parsed.write(tmp / "tables", ROW_GROUP_ROWS)
            (tmp / "report.json").write_text(json.dumps(report.to_json()))
            pq.write_table(summary, tmp / "summary.parquet")  # last: its presence marks a whole entry
            try:
                os.replace(tmp, entry)  # an entry appears whole (summary.parquet inside) or not at all
            except OSError:
                if not (entry / "summary.parquet").is_file():
                    raise  # not a concurrent writer's finished entry
        except FileExistsError:
            pass
        except OSError:  # a read-only or full cache only costs speed: serve this open from a private folder
            import tempfile

            entry = Path(tempfile.mkdtemp(prefix="nares-jsonl-"))
            parsed.write(entry / "tables", ROW_GROUP_ROWS)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    else:
        summary = pq.ParquetFile(entry / "summary.parquet").read()
        report = ParseReport.from_json(json.loads((entry / "report.json").read_text()))
    if report.odd:
        if strict:
            raise report.strict_error(path)
        print(report.summary(path), file=sys.stderr)
    return Dataset(entry / "tables", summary, source=str(path), report=report)


def _missing_as_none(record: dict) -> None:
    """In a record read tolerantly: missing values (NaN) as None, per-epoch lists without trailing padding."""
    tr, tb = record["train"][0], record["test_best"][0]
    for k, v in tr.items():
        if isinstance(v, list):
            vals = [None if x is None or x != x else x for x in v]
            while vals and vals[-1] is None:
                vals.pop()
            tr[k] = vals
    for k, v in tb.items():
        if isinstance(v, float) and v != v:
            tb[k] = None


def open_folder(folder: str | Path, *, strict: bool = False) -> Dataset:
    """A release folder (Parquet tables, directly or under `tables/`, else its `cifar10.jsonl`)."""
    folder = Path(folder)
    from nares.api.long import is_long_release, open_long

    if is_long_release(folder):  # another space: the long results table
        return open_long(folder)  # type: ignore[return-value]
    root = _tables_root(folder)
    if root is not None:
        return Dataset(root, _summary_for(root), source=str(folder))
    if (folder / "cifar10.jsonl").is_file():
        return _open_jsonl(folder / "cifar10.jsonl", strict)
    raise DataError(f"{folder} holds neither Parquet tables nor a cifar10.jsonl")


def open_dataset(source: str | Path | None = None, *, release: str | None = None, data: str | Path | None = None,
                 strict: bool = False) -> Dataset:
    """Open a dataset from exactly one of: `release` (a version, fetched with `nares.release.fetch_release`),
    `data` (a published-layout `cifar10.jsonl`), or `source` (a jsonl file or release folder).

    A jsonl is read tolerantly (what the official NARes class reads; odd values kept as missing and
    summarised on stderr, see `nares.api.jsonl`); `strict=True` refuses any odd value."""
    given = [x for x in (source, release, data) if x is not None]
    if len(given) != 1:
        raise DataError("give exactly one of a release version, a data file or a folder")
    if release is not None:
        try:
            from nares.release import fetch_release
        except ImportError:
            raise DataError(f"cannot open release {release!r}: this installation has no release module") from None
        return open_folder(fetch_release(release))
    path = Path(data if data is not None else source)  # type: ignore[arg-type]
    if path.is_dir():
        return open_folder(path, strict=strict)
    return _open_jsonl(path, strict)
