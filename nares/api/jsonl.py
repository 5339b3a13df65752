"""Read a published-layout `cifar10.jsonl` into the record tables: one streaming pass, columnar buffers.

Each line is parsed by orjson and its numbers are appended to flat float64 buffers, so no per-record
dicts or per-scalar checks are kept; range checks run vectorised once at the end, and a large file is
read by two processes when a second CPU is free (`read_jsonl_tables`). A record that does not fit the fast path (a null, a
missing key, lists of unequal length…) goes to the slow path, which names the field in today's
messages (`nares.records.validate_record`) prefixed with `FILE:LINE:`.

Tolerance (default) reads what the official NARes class reads and keeps every record; values it
lacks are missing (NaN in the summary, null in the tables). Tolerated kinds (`ODD_KINDS`): no
`corruptions` key (or null), a null or missing `test_best` value (`Linf_*`, `test_clean_acc`,
`test_loss`), a percentage outside [0, 100] (kept as is), a null inside a per-epoch list, and
per-epoch lists of unequal length (padded with missing values to the longest; the lists `query`
returns drop trailing missing values). `strict=True` refuses all of these, as the release gate does.
Either way a record that repeats an arch_id or an architecture of an earlier line is refused: the
file's own ids are its id map (`ArchIndex.from_jsonl`), so a duplicate is the only inconsistency an
external file can have, and it is ambiguous rather than odd.
"""

from __future__ import annotations

import copy
import hashlib
import math
import re
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from nares.errors import DataError
from nares.records import (
    HISTORY_KEYS,
    HISTORY_PCT,
    MILLION,
    SEVERITY_KEYS,
    TEST_KEYS,
    TEST_PCT,
    RecordError,
    validate_record,
)
from nares.spaces.wrn import COORD_COLUMNS, DEPTHS, JSONL_KEYS, WIDTHS, all_archs

if TYPE_CHECKING:
    import pyarrow as pa  # imported where used: the helper process reads without it

ODD_KINDS = {
    "no_corruptions": "no corruptions key",
    "missing_test_value": "null or missing test_best value",
    "pct_out_of_range": "percentage outside [0, 100]",
    "null_in_history": "null in a per-epoch list",
    "unequal_history": "per-epoch lists of unequal length",
}
FIRST_IDS = 5
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_SEV = {s: int(s) for s in SEVERITY_KEYS}
_TEST_IS_PCT = [k in TEST_PCT for k in TEST_KEYS]


class _Slow(Exception):
    """The fast path cannot take this record."""


@dataclass
class ParseReport:
    """What one parse found: record count, odd values by kind (arch ids), the published count unit."""

    n_records: int = 0
    odd: dict[str, list[int]] = field(default_factory=dict)
    first: dict[str, str] = field(default_factory=dict)  # kind → "LINE: record ID: field" of its first one
    counts_unit: str = "millions"  # "count" when every MACs/Params was a JSON integer, "mixed" when both

    def add(self, kind: str, arch_id: int, where: str) -> None:
        ids = self.odd.setdefault(kind, [])
        if not ids:
            self.first[kind] = where
        ids.append(arch_id)

    def to_json(self) -> dict:
        return {"n_records": self.n_records, "odd": self.odd, "first": self.first, "counts_unit": self.counts_unit}

    @classmethod
    def from_json(cls, d: dict) -> ParseReport:
        return cls(d["n_records"], d["odd"], d["first"], d["counts_unit"])

    def summary(self, path: Path | str) -> str:
        """One line: counts by kind with the first arch ids; empty when nothing was odd."""
        if not self.odd:
            return ""
        n_recs = len({i for ids in self.odd.values() for i in ids})
        parts = []
        for kind, ids in self.odd.items():
            first = ", ".join(map(str, sorted(set(ids))[:FIRST_IDS])) + (", …" if len(set(ids)) > FIRST_IDS else "")
            parts.append(f"{ODD_KINDS[kind]}: {len(set(ids))} (arch_id {first})")
        return (f"nares: note: {path}: {n_recs} of {self.n_records} records hold values the published layout "
                f"does not allow; kept, missing values read as missing — {'; '.join(parts)} (--strict refuses them)")

    def strict_error(self, path: Path | str) -> RecordError:
        kind = next(iter(self.odd))
        return RecordError(f"{path}:{self.first[kind]} ({ODD_KINDS[kind]}; {len(self.odd[kind])} such records)")


class _Grow:
    """A growable float64 buffer (amortised doubling); `n` is its length."""

    def __init__(self, dtype=np.float64, capacity: int = 1 << 16):
        self.a = np.empty(capacity, dtype=dtype)
        self.n = 0

    def reserve(self, capacity: int) -> None:
        if capacity > len(self.a):
            bigger = np.empty(capacity, dtype=self.a.dtype)
            bigger[: self.n] = self.a[: self.n]
            self.a = bigger

    def add(self, values: np.ndarray) -> None:
        k = len(values)
        if self.n + k > len(self.a):
            self.reserve(max(2 * len(self.a), self.n + k))
        self.a[self.n : self.n + k] = values
        self.n += k

    def view(self) -> np.ndarray:
        return self.a[: self.n]


@dataclass
class _Buffers:
    """Flat columns of everything read so far.

    `hist` holds each record's 12 per-epoch lists back to back (record-major, then HISTORY_KEYS order);
    `test` its 11 test_best values; `cells` its corruption cells' (acc, loss) in file order."""

    ids: array = field(default_factory=lambda: array("q"))
    codes: array = field(default_factory=lambda: array("q"))
    lines: array = field(default_factory=lambda: array("q"))
    params: array = field(default_factory=lambda: array("q"))
    macs: array = field(default_factory=lambda: array("q"))
    seed: array = field(default_factory=lambda: array("q"))
    gpu: list = field(default_factory=list)
    stamp: list = field(default_factory=list)
    ttime: array = field(default_factory=lambda: array("d"))
    best: array = field(default_factory=lambda: array("q"))
    h_len: array = field(default_factory=lambda: array("q"))
    hist: _Grow = field(default_factory=lambda: _Grow(capacity=1 << 20))
    test: _Grow = field(default_factory=_Grow)
    c_len: array = field(default_factory=lambda: array("q"))
    c_name: array = field(default_factory=lambda: array("h"))
    c_sev: array = field(default_factory=lambda: array("b"))
    cells: _Grow = field(default_factory=_Grow)  # (acc, loss) of each cell, interleaved


_CELL = ("acc", "loss")


def _count_any(v: Any) -> tuple[int, bool]:
    """`_count` of a validated value (a JSON integer may be too large for the fast path's checks)."""
    try:
        return _count(v)
    except _Slow:
        return int(v), True


def _count(v: Any) -> tuple[int, bool]:
    """A published MACs/Params → (exact count, was a JSON integer); a float is millions."""
    t = type(v)
    if t is int and v >= 0:
        return v, True
    if t is float and math.isfinite(v) and v >= 0:
        return round(v * MILLION), False
    raise _Slow


class _Reader:
    def __init__(self, path: Path, strict: bool):
        self.path, self.strict = path, strict
        self.b = _Buffers()
        self.report = ParseReport()
        self.code_of = {a.to_tuple(): i for i, a in enumerate(all_archs())}
        self.line_of_id: dict[int, int] = {}
        self.line_of_code: dict[int, int] = {}
        self.names: dict[str, int] = {}
        self.int_counts = self.float_counts = 0
        self._layout: tuple = ()  # corruption layout of the previous record: (names, severities, id arrays)

    # -------------------------------------------------------------- one record

    def add(self, rec: Any, lineno: int) -> None:
        try:
            aid, code = self._fast(rec)
        except (_Slow, KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError):
            aid, code = self._slow(rec, lineno)
        self.b.lines.append(lineno)
        self._unique(aid, code, lineno)

    def _unique(self, aid: int, code: int, lineno: int) -> None:
        prev = self.line_of_id.get(aid)
        if prev is not None:
            raise DataError(f"{self.path}: line {lineno} repeats arch_id {aid} of line {prev}; "
                            "each arch_id must appear once")
        prev = self.line_of_code.get(code)
        if prev is not None:
            arch = "-".join(map(str, all_archs()[code].to_tuple()))
            raise DataError(f"{self.path}: line {lineno} (arch_id {aid}) holds architecture {arch}, already at "
                            f"line {prev} (arch_id {int(self.b.ids[list(self.line_of_code).index(code)])}); "
                            "each architecture must appear once")
        self.line_of_id[aid] = lineno
        self.line_of_code[code] = lineno

    def _fast(self, rec: dict) -> tuple[int, int]:
        """Read a regular record: every check and conversion first, then the appends (which cannot fail)."""
        aid = rec["arch_id"]
        a = rec["arch"]
        if type(aid) is not int or aid < 1 or type(a) is not dict or len(a) != 6:
            raise _Slow
        code = self.code_of[(a["D1"], a["W1"], a["D2"], a["W2"], a["D3"], a["W3"])]
        trs, tbs = rec["train"], rec["test_best"]
        if type(trs) is not list or type(tbs) is not list or len(trs) != 1 or len(tbs) != 1:
            raise _Slow
        tr, tb = trs[0], tbs[0]
        seed, gpu, stamp, tt, be = tr["seed"], tr["gpu_type"], tr["timestamp"], tr["training_time"], tr["best_epoch"]
        if (type(seed) is not int or type(gpu) is not str or type(stamp) is not str or not _DATE.match(stamp)
                or type(be) is not int or type(tt) not in (int, float) or not tt >= 0):
            raise _Slow
        n = len(tr["train_loss"])
        if not 0 <= be < n:
            raise _Slow
        flat: list = []
        for key in HISTORY_KEYS:
            values = tr[key]
            if type(values) is not list or len(values) != n:
                raise _Slow
            flat += values
        hist = array("d", flat)  # TypeError (→ slow path) on null, strings, nested lists
        test = array("d", [tb[k] for k in TEST_KEYS])
        corr = tb["corruptions"]
        if type(corr) is not dict:
            raise _Slow
        layout = self._layout_of(corr)
        cells = array("d", [c[k] for sev in corr.values() for c in sev.values() for k in _CELL])
        params, macs = _count(rec["Params"]), _count(rec["MACs"])
        b = self.b
        b.hist.add(np.frombuffer(hist, dtype=np.float64))
        b.test.add(np.frombuffer(test, dtype=np.float64))
        b.cells.add(np.frombuffer(cells, dtype=np.float64))
        b.c_name.extend(layout[2])
        b.c_sev.extend(layout[3])
        b.c_len.append(len(layout[3]))
        self._counts(params, macs)
        b.ids.append(aid)
        b.codes.append(code)
        b.seed.append(seed)
        b.gpu.append(gpu)
        b.stamp.append(stamp)
        b.ttime.append(tt)
        b.best.append(be)
        b.h_len.append(n)
        return aid, code

    def _counts(self, *counts: tuple[int, bool]) -> None:
        (params, p_int), (macs, m_int) = counts
        self.b.params.append(params)
        self.b.macs.append(macs)
        self.int_counts += p_int + m_int
        self.float_counts += 2 - p_int - m_int

    def _layout_of(self, corr: dict) -> tuple:
        """(names, severity keys, name ids, severity ids) of a `corruptions` object, reused while it
        repeats the previous record's (the usual case), so only the values are read per cell."""
        names = list(corr)
        keys = [tuple(sev) if type(sev) is dict else None for sev in corr.values()]
        layout = self._layout
        if layout and layout[0] == names and layout[1] == keys:
            return layout
        if any(not k for k in keys):
            raise _Slow
        name_ids, sev_ids = array("h"), array("b")
        for name, ks in zip(names, keys, strict=True):
            cid = self.names.setdefault(name, len(self.names))
            name_ids.extend([cid] * len(ks))
            sev_ids.extend([_SEV[s] for s in ks])
        self._layout = (names, keys, name_ids, sev_ids)
        return self._layout

    def _slow(self, rec: Any, lineno: int) -> tuple[int, int]:
        """Name the first problem (strict), or keep the record with its odd values as missing (tolerant)."""
        where = f"{self.path}:{lineno}"
        if self.strict:
            try:
                validate_record(rec)
            except RecordError as e:
                raise RecordError(f"{where}: {e}") from None
        clean, kinds = _sanitise(rec)
        try:
            validate_record(clean)
        except RecordError as e:
            raise RecordError(f"{where}: {e}") from None
        aid = rec["arch_id"]
        for kind, what in kinds:
            self.report.add(kind, aid, f"{lineno}: record {aid}: {what}")
        return self._append_clean(rec, clean, aid)

    def _append_clean(self, rec: dict, clean: dict, aid: int) -> tuple[int, int]:
        """Append a record `_sanitise` made valid, its missing values (null/absent in `rec`) as NaN."""
        b = self.b
        a = clean["arch"]
        code = self.code_of[tuple(int(a[k]) for k in JSONL_KEYS)]
        self._counts(*(_count_any(clean[k]) for k in ("Params", "MACs")))
        tr = clean["train"][0]
        raw_tr, raw_tb = rec["train"][0], rec["test_best"][0]
        n = len(tr["train_loss"])
        flat = []
        for key in HISTORY_KEYS:
            raw = raw_tr[key]
            flat += [float(v) if type(v) in (int, float) else math.nan for v in raw] + [math.nan] * (n - len(raw))
        b.hist.add(np.array(flat, dtype=np.float64))
        b.test.add(np.array([float(v) if type(v := raw_tb.get(k)) in (int, float) else math.nan for k in TEST_KEYS]))
        self._layout = ()
        b.c_len.append(self._cells_slow(raw_tb.get("corruptions") or {}))
        b.ids.append(aid)
        b.codes.append(code)
        b.seed.append(tr["seed"])
        b.gpu.append(tr["gpu_type"])
        b.stamp.append(tr["timestamp"])
        b.ttime.append(tr["training_time"])
        b.best.append(tr["best_epoch"])
        b.h_len.append(n)
        return aid, code

    def _cells_slow(self, corr: dict) -> int:
        b = self.b
        n = 0
        for name, sev in corr.items():
            cid = self.names.setdefault(name, len(self.names))
            for s, cell in sev.items():
                b.c_name.append(cid)
                b.c_sev.append(_SEV[s])
                b.cells.add(np.array([float(cell["acc"]), float(cell["loss"])]))
                n += 1
        return n

    # -------------------------------------------------------------- after the pass

    def check_ranges(self) -> None:
        """Vectorised: percentages outside [0, 100] are odd (strict: refused). (orjson reads no NaN/inf.)"""
        b = self.b
        n = len(b.ids)
        h_len = np.frombuffer(b.h_len, dtype=np.int64)
        rec_starts = np.cumsum(12 * h_len) - 12 * h_len
        is_pct = np.array([k in HISTORY_PCT for k in HISTORY_KEYS])
        hist = b.hist.view()
        bad_parts, step = [], 1024
        with np.errstate(invalid="ignore"):
            for lo in range(0, n, step):  # in chunks of records: a few MB of masks at a time
                hi = min(n, lo + step)
                part = hist[rec_starts[lo]:rec_starts[hi - 1] + 12 * h_len[hi - 1]]
                key = np.repeat(np.tile(np.arange(12, dtype=np.int8), hi - lo), np.repeat(h_len[lo:hi], 12))
                bad_parts.append(rec_starts[lo] + np.flatnonzero(is_pct[key] & ((part < 0) | (part > 100))))
            bad_h = np.concatenate(bad_parts) if bad_parts else np.zeros(0, np.int64)
            key_of = {int(p): _key_at(p, rec_starts, h_len) for p in bad_h}
            test = b.test.view().reshape(n, len(TEST_KEYS))
            bad_t = np.argwhere(np.array(_TEST_IS_PCT)[None, :] & ((test < 0) | (test > 100)))
            acc = b.cells.view()[0::2]
            bad_c = np.flatnonzero((acc < 0) | (acc > 100))
        found: dict[int, str] = {}
        for pos in bad_h[::-1]:
            r = int(np.searchsorted(rec_starts, pos, side="right") - 1)
            found[r] = f"train[0].{HISTORY_KEYS[key_of[int(pos)]]}"
        for r, k in bad_t[::-1]:
            found[int(r)] = f"test_best[0].{TEST_KEYS[k]}"
        c_len = np.frombuffer(b.c_len, dtype=np.int64)
        c_starts = np.cumsum(c_len) - c_len
        for pos in bad_c[::-1]:
            found[int(np.searchsorted(c_starts, pos, side="right") - 1)] = "a corruptions acc"
        for r in sorted(found):
            self.report.add("pct_out_of_range", int(b.ids[r]),
                            f"{b.lines[r]}: record {b.ids[r]}: {found[r]} is outside [0, 100]")
        if self.strict and self.report.odd:
            raise self.report.strict_error(self.path)

    def export(self, folder: Path) -> dict:
        """Everything read, for `merge` in another process: float buffers as raw files in `folder`."""
        b = self.b
        for name in _FLOAT_BUFFERS:
            getattr(b, name).view().tofile(folder / f"{name}.f64")
        small = {k: getattr(b, k) for k in ("ids", "codes", "lines", "params", "macs", "seed", "gpu", "stamp",
                                            "ttime", "best", "h_len", "c_len", "c_name", "c_sev")}
        return {**small, "sizes": {n: getattr(b, n).n for n in _FLOAT_BUFFERS}, "names": list(self.names),
                "odd": self.report.odd, "first": self.report.first, "counts": (self.int_counts, self.float_counts)}

    def merge(self, part: dict, folder: Path) -> None:
        """Append the records another reader exported (`export`), after this reader's own, checking that
        none repeats an arch_id or architecture read here."""
        b = self.b
        for aid, code, line in zip(part["ids"], part["codes"], part["lines"], strict=True):
            self._unique(aid, code, line)
        for name in _FLOAT_BUFFERS:
            buf, k = getattr(b, name), part["sizes"][name]
            buf.reserve(buf.n + k)
            with open(folder / f"{name}.f64", "rb") as fh:
                fh.readinto(memoryview(buf.a[buf.n:buf.n + k]).cast("B"))
            buf.n += k
        remap = np.array([self.names.setdefault(n, len(self.names)) for n in part["names"]] or [0], dtype=np.int16)
        b.c_name.extend(array("h", remap[np.frombuffer(part["c_name"], dtype=np.int16)].tobytes()))
        for k in ("ids", "codes", "lines", "params", "macs", "seed", "gpu", "stamp", "ttime", "best", "h_len",
                  "c_len", "c_sev"):
            getattr(b, k).extend(part[k])
        for kind, ids in part["odd"].items():
            for i, aid in enumerate(ids):
                self.report.add(kind, aid, part["first"][kind] if i == 0 else "")
        self.int_counts += part["counts"][0]
        self.float_counts += part["counts"][1]

    def reserve(self, n_records: int) -> None:
        """Size the buffers for about `n_records` records like those read so far (no copy while growing)."""
        b = self.b
        for buf in (b.hist, b.test, b.cells):
            buf.reserve(n_records * buf.n // len(b.ids))

    def result(self) -> Parsed:
        return Parsed(self.b, self.names, self.report)


def _key_at(pos: int, rec_starts: np.ndarray, h_len: np.ndarray) -> int:
    """The HISTORY_KEYS index of flat history position `pos`."""
    r = int(np.searchsorted(rec_starts, pos, side="right") - 1)
    return int((pos - rec_starts[r]) // h_len[r])


class Parsed:
    """The columns of a parsed file: `summary()` and `write(folder)` (the five record tables, arch_id order)."""

    def __init__(self, b: _Buffers, names: dict[str, int], report: ParseReport):
        self.b, self.report = b, report
        self.sha256 = ""
        self.names = np.array(list(names), dtype=object)
        self.ids = np.frombuffer(b.ids, dtype=np.int64)
        self.order = np.argsort(self.ids, kind="stable")
        self.h_len = np.frombuffer(b.h_len, dtype=np.int64)
        self.h_start = np.cumsum(12 * self.h_len) - 12 * self.h_len
        self.c_len = np.frombuffer(b.c_len, dtype=np.int64)
        self.c_start = np.cumsum(self.c_len) - self.c_len
        self.test = b.test.view().reshape(len(self.ids), len(TEST_KEYS))[self.order]
        o = self.order
        in_order = bool((o == np.arange(len(o))).all())
        c_rows = slice(None) if in_order else _block_rows(self.c_start[o], self.c_len[o])  # views when in order
        cells = b.cells.view().reshape(-1, 2)
        self.c_acc = np.ascontiguousarray(cells[c_rows, 0])
        self.c_loss = np.ascontiguousarray(cells[c_rows, 1])
        self.c_name = np.frombuffer(b.c_name, dtype=np.int16)[c_rows]
        self.c_sev = np.frombuffer(b.c_sev, dtype=np.int8)[c_rows]

    def corrupt_pct(self) -> np.ndarray:
        from nares.api.summary import corrupt_acc_pct

        return corrupt_acc_pct(self.c_len[self.order], self.c_name, self.c_sev, self.c_acc)

    def _architectures(self) -> dict[str, Any]:
        o = self.order
        from nares.spaces.wrn import SPACE

        code_digits = SPACE.digits

        codes = np.frombuffer(self.b.codes, dtype=np.int64)[o]
        archs = all_archs()
        digits = code_digits(codes)
        choices = [np.array(v, dtype=np.int8) for v in (DEPTHS, WIDTHS)]
        cols: dict[str, Any] = {"arch_id": self.ids[o],
                                "arch": ["-".join(map(str, archs[c].to_tuple())) for c in codes.tolist()]}
        for k, col in enumerate(COORD_COLUMNS):
            cols[col] = choices[k % 2][digits[:, k]]
        cols["params"] = np.frombuffer(self.b.params, dtype=np.int64)[o]
        cols["macs"] = np.frombuffer(self.b.macs, dtype=np.int64)[o]
        return cols

    def _runs(self) -> dict[str, Any]:
        o, b = self.order, self.b
        return {"arch_id": self.ids[o], "seed": np.frombuffer(b.seed, dtype=np.int64)[o],
                "gpu_type": [b.gpu[i] for i in o], "timestamp": [b.stamp[i] for i in o],
                "training_time_gpu_days": np.frombuffer(b.ttime, dtype=np.float64)[o],
                "best_epoch": np.frombuffer(b.best, dtype=np.int64)[o]}

    def _test(self, corrupt_pct: np.ndarray) -> dict[str, Any]:
        cols: dict[str, Any] = {"arch_id": self.ids[self.order]}
        for j, (key, pct) in enumerate(zip(TEST_KEYS, _TEST_IS_PCT, strict=True)):
            v = self.test[:, j]
            cols[key[5:] if key.startswith("Linf_") else key] = _nullable(v / 100.0 if pct else v)
        cols["corrupt_acc"] = _nullable(corrupt_pct / 100.0)
        return cols

    def _history(self, recs: np.ndarray, keys: tuple[str, ...] = HISTORY_KEYS) -> dict[str, Any]:
        """History columns of records `recs` (file-order indices), their epochs in order."""
        n = self.h_len[recs]
        starts = np.repeat(self.h_start[recs], n)
        epoch = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
        hist = self.b.hist.view()
        cols: dict[str, Any] = {"arch_id": np.repeat(self.ids[recs], n), "epoch": epoch}
        for key in keys:
            k = HISTORY_KEYS.index(key)
            v = hist[starts + k * np.repeat(n, n) + epoch]
            cols[key] = _nullable(v / 100.0 if key in HISTORY_PCT else v)
        return cols

    def summary(self) -> pa.Table:
        """The per-architecture summary (`nares.api.summary` layout), built from the buffers directly."""
        import pyarrow as pa

        from nares.api.metrics import Metric
        from nares.api.summary import ARCH_COLUMNS, CORRUPT_PCT, HISTORY_AT_BEST, TEST_COLUMNS
        from nares.store.tables import SCHEMAS

        o = self.order
        best = np.frombuffer(self.b.best, dtype=np.int64)[o]
        hist = self.b.hist.view()
        n = self.h_len[o]
        corrupt = self.corrupt_pct()
        arch, test = self._architectures(), self._test(corrupt)
        fields = [SCHEMAS["architectures"].field(c) for c in ARCH_COLUMNS]
        cols: list[Any] = [arch[c] for c in ARCH_COLUMNS]
        fields.append(pa.field(Metric.BEST_EPOCH.column, pa.int16()))
        cols.append(best)
        for key, col in HISTORY_AT_BEST.items():
            v = hist[self.h_start[o] + HISTORY_KEYS.index(key) * n + best]
            fields.append(pa.field(col, pa.float64()))
            cols.append(v / 100.0 if key in HISTORY_PCT else v)
        for src, m in TEST_COLUMNS.items():
            fields.append(pa.field(m.column, pa.float64()))
            cols.append(test[src])
        fields.append(pa.field(CORRUPT_PCT, pa.float64()))
        cols.append(corrupt)
        return _table_of(pa.schema(fields), cols)

    def write(self, folder: Path, row_group_rows: int) -> None:
        """The five record tables as `<folder>/<name>.parquet` (the single-file layout of `table_files`)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        folder.mkdir(parents=True, exist_ok=True)
        # a local cache: no compression, dictionaries for strings, statistics only where queries filter
        opts = {"compression": "none", "use_dictionary": ["gpu_type", "timestamp", "corruption"],
                "write_statistics": ["arch_id", "epoch"]}
        corrupt = self.corrupt_pct()
        o = self.order
        corr = {"arch_id": np.repeat(self.ids[o], self.c_len[o]),
                "corruption": pa.DictionaryArray.from_arrays(_numeric(self.c_name, pa.int16()),
                                                             _strings(self.names.tolist())),
                "severity": self.c_sev, "acc": _nullable(self.c_acc / 100.0), "loss": _nullable(self.c_loss)}
        for name, cols in (("architectures", self._architectures()), ("runs", self._runs()),
                           ("test_metrics", self._test(corrupt)), ("corruptions", corr)):
            pq.write_table(_table(name, cols), folder / f"{name}.parquet", row_group_size=row_group_rows, **opts)
        from nares.store.tables import SCHEMAS

        with pq.ParquetWriter(folder / "history.parquet", SCHEMAS["history"], **opts) as w:
            per = max(1, row_group_rows // max(1, int(self.h_len.max())))
            for lo in range(0, len(o), per):
                w.write_table(_table("history", self._history(o[lo:lo + per])), row_group_size=row_group_rows)


def _table(name: str, cols: dict[str, Any]) -> pa.Table:
    from nares.store.tables import SCHEMAS

    schema = SCHEMAS[name]
    return _table_of(schema, [cols[f.name] for f in schema])


def _table_of(schema: pa.Schema, cols: list[Any]) -> pa.Table:
    """A table from numpy columns (NaN → null in float columns), lists of str or Arrow arrays, built from
    buffers: `pa.array` would import pandas, a third of a second of a first open."""
    import pyarrow as pa

    arrays = []
    for f, c in zip(schema, cols, strict=True):
        if isinstance(c, pa.Array):
            arrays.append(c if c.type == f.type else c.cast(f.type))
        elif isinstance(c, list):
            arrays.append(_strings(c))
        else:
            arrays.append(_numeric(np.asarray(c), f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _numeric(values: np.ndarray, typ: pa.DataType) -> pa.Array:
    import pyarrow as pa

    values = np.ascontiguousarray(values, dtype=typ.to_pandas_dtype())
    validity = None
    if values.dtype.kind == "f":
        missing = np.isnan(values)
        if missing.any():
            validity = pa.py_buffer(np.packbits(~missing, bitorder="little"))
    return pa.Array.from_buffers(typ, len(values), [validity, pa.py_buffer(values)])


def _strings(values: list[str]) -> pa.Array:
    import pyarrow as pa

    data = [v.encode() for v in values]
    offsets = np.zeros(len(data) + 1, dtype=np.int32)
    np.cumsum([len(d) for d in data], out=offsets[1:])
    return pa.Array.from_buffers(pa.string(), len(data), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(data))])


def _block_rows(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Row indices of the blocks (starts[i], lengths[i]) back to back."""
    total = int(lengths.sum())
    return np.repeat(starts - (np.cumsum(lengths) - lengths), lengths) + np.arange(total)


def _nullable(values: np.ndarray) -> np.ndarray:
    """A float64 column; its NaNs (missing values) become nulls in the tables (`_numeric`)."""
    return np.asarray(values, dtype=np.float64)


def _sanitise(rec: Any) -> tuple[Any, list[tuple[str, str]]]:
    """A copy of `rec` with each tolerated oddity replaced by a valid placeholder, and the oddities found.

    The copy is only validated (so every other field is checked with today's messages); the values
    kept are taken from `rec` (missing → NaN). Percentages outside [0, 100] are found later, vectorised.
    """
    kinds: list[tuple[str, str]] = []
    try:
        tb0, tr0 = rec["test_best"][0], rec["train"][0]
    except (KeyError, IndexError, TypeError):
        return rec, kinds
    if not isinstance(tb0, dict) or not isinstance(tr0, dict):
        return rec, kinds
    clean = copy.copy(rec)
    tb, tr = dict(tb0), dict(tr0)
    clean["test_best"], clean["train"] = [tb], [tr]
    if tb.get("corruptions") is None:
        kinds.append(("no_corruptions", "test_best[0] has no corruptions"))
        tb["corruptions"] = {}
    for key in TEST_KEYS:
        if tb.get(key) is None:
            kinds.append(("missing_test_value", f"test_best[0].{key} is {'null' if key in tb else 'missing'}"))
            tb[key] = 0.0
    lists = {k: tr[k] for k in HISTORY_KEYS if isinstance(tr.get(k), list)}
    if len(lists) == len(HISTORY_KEYS):
        n = max(len(v) for v in lists.values())
        if any(len(v) != n for v in lists.values()):
            short = next(k for k, v in lists.items() if len(v) != n)
            kinds.append(("unequal_history", f"train[0].{short} has {len(lists[short])} epochs, the longest list {n}"))
        for k, v in lists.items():
            if any(x is None for x in v):
                kinds.append(("null_in_history", f"train[0].{k}[{v.index(None)}] is null"))
            tr[k] = [0.0 if x is None else x for x in v] + [0.0] * (n - len(v))
    for k in HISTORY_PCT:
        if isinstance(tr.get(k), list):
            tr[k] = [min(max(x, 0.0), 100.0) if type(x) in (int, float) else x for x in tr[k]]
    for k in TEST_PCT:
        if type(tb.get(k)) in (int, float):
            tb[k] = min(max(tb[k], 0.0), 100.0)
    if isinstance(tb.get("corruptions"), dict):
        tb["corruptions"] = {
            name: ({s: ({**cell, "acc": min(max(cell["acc"], 0.0), 100.0)}
                        if isinstance(cell, dict) and type(cell.get("acc")) in (int, float) else cell)
                    for s, cell in sev.items()} if isinstance(sev, dict) else sev)
            for name, sev in tb["corruptions"].items()}
    return clean, kinds


PARALLEL_MIN_BYTES = 32 << 20  # smaller files: one process (a second interpreter costs ~0.2 s to start)
_FLOAT_BUFFERS = ("hist", "test", "cells")


def read_jsonl_tables(path: Path, *, strict: bool = False) -> Parsed:
    """Parse `path` once (`Parsed`: its tables, summary and report of odd values). Refuses
    (RecordError/DataError, one line naming the file, line and field) what even tolerance cannot keep.

    A large file on a machine with a free second CPU is read by two processes: this one reads the first
    half while a helper interpreter reads the second (`python -m nares.api.jsonl`), whose columns are
    then appended here through raw files; the result is the same as reading it in one pass."""

    size = path.stat().st_size
    reader = _Reader(path, strict)
    digest = hashlib.sha256()
    parallel = size >= PARALLEL_MIN_BYTES and _idle_cpu()
    with open(path, "rb") as fh:
        split, first_line = _split(fh, size, digest) if parallel else (size, 1)
        if split >= size:
            _parse_range(reader, fh, 0, size, 1, digest)
        else:
            _parse_in_two(reader, fh, path, split, size, first_line, strict, digest)
    if not reader.b.ids:
        raise DataError(f"data file {path} holds no records")
    reader.check_ranges()
    report = reader.report
    report.n_records = len(reader.b.ids)
    report.counts_unit = ("mixed" if reader.int_counts and reader.float_counts
                          else "count" if reader.int_counts else "millions")
    parsed = reader.result()
    parsed.sha256 = digest.hexdigest()
    return parsed


def _idle_cpu() -> bool:
    """Whether a second CPU is free (load average below the CPUs minus one): on a busy machine the helper
    only competes with this process, and one pass was measured faster there (7.2-7.8 s vs 10-14 s)."""
    import os

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return cpus >= 2 and os.getloadavg()[0] < cpus - 1


def _split(fh, size: int, digest) -> tuple[int, int]:
    """The first line start after the middle of the file, and its line number; hashes the bytes before it."""
    fh.seek(size // 2)
    fh.readline()
    split = fh.tell()
    fh.seek(0)
    lines, left = 0, split
    while left > 0:
        block = fh.read(min(left, 1 << 24))
        digest.update(block)
        lines += block.count(b"\n")
        left -= len(block)
    return split, lines + 1


def _parse_range(reader: _Reader, fh, start: int, stop: int, first_line: int, digest=None) -> None:
    """Read the lines of bytes [start, stop) (line starts) into `reader`; hash them when `digest` is given."""
    path = reader.path
    fh.seek(start)
    pos, span = start, max(1, stop - start)
    for lineno, line in enumerate(fh, first_line):
        if pos >= stop:
            break
        pos += len(line)
        if digest is not None:
            digest.update(line)
        if line.isspace():
            continue
        try:
            rec = orjson.loads(line)
        except orjson.JSONDecodeError as e:
            raise RecordError(f"{path}:{lineno}: not JSON ({e.msg})") from None
        if type(rec) is not dict:
            raise RecordError(f"{path}:{lineno}: record is a {type(rec).__name__}, expected a JSON object")
        reader.add(rec, lineno)
        n = len(reader.b.ids)
        if n == 1 or n == 1024:  # sized from the bytes read so far; unused capacity costs no memory
            reader.reserve(int(1.5 * n * span / max(1, pos - start)) + 16)


def _parse_in_two(reader: _Reader, fh, path: Path, split: int, size: int, first_line: int, strict: bool,
                  digest) -> None:
    import os
    import pickle
    import subprocess
    import sys
    import tempfile

    import nares

    with tempfile.TemporaryDirectory(prefix="nares-jsonl-") as tmp:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(nares.__file__).parent.parent),
                                                            os.environ.get("PYTHONPATH", "")])}
        helper = subprocess.Popen([sys.executable, "-m", "nares.api.jsonl", str(path), str(split), str(size),
                                   str(first_line), "1" if strict else "0", tmp], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            _parse_range(reader, fh, 0, split, 1)
            fh.seek(split)
            while block := fh.read(1 << 24):
                digest.update(block)
            err = helper.communicate()[1]
        finally:
            if helper.poll() is None:
                helper.kill()
                helper.wait()
        out = Path(tmp) / "result.pickle"
        if helper.returncode != 0 or not out.is_file():
            raise DataError(f"reading {path}: the helper process failed ({err.decode(errors='replace').strip()[-300:]})")
        result = pickle.loads(out.read_bytes())
        if "error" in result:
            raise result["error"]
        reader.merge(result, Path(tmp))


def _helper_main(argv: list[str]) -> None:
    """`python -m nares.api.jsonl PATH START STOP FIRST_LINE STRICT OUT_DIR`: the second half's columns."""
    import pickle

    path, start, stop, first_line, strict, out = argv
    reader = _Reader(Path(path), strict == "1")
    try:
        with open(path, "rb") as fh:
            _parse_range(reader, fh, int(start), int(stop), int(first_line))
        result = reader.export(Path(out))
    except (RecordError, DataError) as e:
        result = {"error": e}
    (Path(out) / "result.pickle").write_bytes(pickle.dumps(result))


if __name__ == "__main__":
    import sys

    _helper_main(sys.argv[1:])
