"""The published NARes `cifar10.jsonl` (PROTOCOL §4) ⇄ the long-format results table, losslessly.

Import: every number of a record becomes one row (accuracy-type values kept as the published percentages,
`Params`/`MACs` as exact counts), the record's `gpu_type` and date fill `device` and `timestamp` of its rows.
Export: the record of each architecture of the WRN space, bit for bit the record the factory writes
(`nares.records.build_record` layout and key order), from the rows of its `best` checkpoint and its training.
The published spellings (`Linf_fgsm_acc`, `test_clean_acc`, ...) live here only.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from nares.records import (
    HISTORY_KEYS,
    TEST_KEYS,
    RecordError,
    count_from_published,
    iter_jsonl,
    millions,
    write_jsonl,
)
from nares.results.build import LongBuilder, concat
from nares.results.schema import TRAIN
from nares.spaces.wrn import Arch

SPACE, DATASET, CHECKPOINT = "wrn", "cifar10", "best"
# Published test_best key → (evaluation, metric).
TEST_PAIRS: dict[str, tuple[str, str]] = {
    k: ("clean", "acc") if k == "test_clean_acc" else ("clean", "loss") if k == "test_loss"
    else tuple(k[len("Linf_"):].split("_", 1))  # type: ignore[misc]
    for k in TEST_KEYS
}
CHUNK = 1024


class _Layout:
    """Per-row code arrays (checkpoint, evaluation, metric, key) of a record's fixed part, cached per epochs."""

    def __init__(self, b: LongBuilder) -> None:
        self.b = b
        self._fixed: dict[int, tuple[np.ndarray, ...]] = {}
        self._corr: dict[tuple, tuple[np.ndarray, ...]] = {}

    def fixed(self, epochs: int) -> tuple[np.ndarray, ...]:
        if epochs not in self._fixed:
            rows = [("", TRAIN, h, str(e)) for h in HISTORY_KEYS for e in range(epochs)]
            rows += [("", TRAIN, "best_epoch", ""), ("", TRAIN, "training_time", "")]
            rows += [(CHECKPOINT, *TEST_PAIRS[k], "") for k in TEST_KEYS]
            rows += [(CHECKPOINT, "complexity", "params", ""), (CHECKPOINT, "complexity", "macs", "")]
            self._fixed[epochs] = self._codes(rows)
        return self._fixed[epochs]

    def corruptions(self, cells: tuple) -> tuple[np.ndarray, ...]:
        if cells not in self._corr:
            rows = [(CHECKPOINT, "corruptions", m, f"{name}/{s}") for name, s in cells for m in ("acc", "loss")]
            self._corr[cells] = self._codes(rows)
        return self._corr[cells]

    def _codes(self, rows: list[tuple[str, str, str, str]]) -> tuple[np.ndarray, ...]:
        cols = ("checkpoint", "evaluation", "metric", "key")
        return tuple(self.b.codes(c, [r[i] for r in rows]) for i, c in enumerate(cols))


def records_to_long(records: Iterable[Mapping[str, Any]], *, dataset: str = DATASET) -> pa.Table:
    """The long rows of published-layout records (checked: a malformed record raises RecordError)."""
    b = LongBuilder()
    layout = _Layout(b)
    for rec in records:
        _add_record(b, layout, rec, dataset)
    return b.table()


def read_jsonl_long(path: str | Path, *, dataset: str = DATASET) -> pa.Table:
    """The long table of a published-layout jsonl, read in chunks of records."""
    parts, chunk = [], []
    for rec in iter_jsonl(path):
        chunk.append(rec)
        if len(chunk) == CHUNK:
            parts.append(records_to_long(chunk, dataset=dataset))
            chunk = []
    if chunk or not parts:
        parts.append(records_to_long(chunk, dataset=dataset))
    return concat(parts)


def _add_record(b: LongBuilder, layout: _Layout, rec: Mapping[str, Any], dataset: str) -> None:
    try:
        aid = int(rec["arch_id"])
        arch = str(Arch.parse(rec["arch"]))
        tr, tb = rec["train"][0], rec["test_best"][0]
        epochs = len(tr[HISTORY_KEYS[0]])
        values: list[float] = []
        for h in HISTORY_KEYS:
            if len(tr[h]) != epochs:
                raise RecordError(f"record {aid}: train[0].{h} has {len(tr[h])} epochs, train_loss has {epochs}")
            values.extend(tr[h])
        values += [tr["best_epoch"], tr["training_time"], *(tb[k] for k in TEST_KEYS),
                   count_from_published(rec["Params"], "Params"), count_from_published(rec["MACs"], "MACs")]
        corr = tb.get("corruptions") or {}
        cells = tuple((name, s) for name, sev in corr.items() for s in sev)
        values += [v for name, sev in corr.items() for c in sev.values() for v in (c["acc"], c["loss"])]
        seed, device, stamp = int(tr["seed"]), str(tr["gpu_type"]), str(tr["timestamp"])
    except (KeyError, IndexError, TypeError, AttributeError) as e:
        raise RecordError(f"record {rec.get('arch_id') if isinstance(rec, Mapping) else rec!r} does not follow the "
                          f"published layout ({type(e).__name__}: {e})") from None
    codes = [np.concatenate(p) for p in zip(layout.fixed(epochs), layout.corruptions(cells), strict=True)]
    b.add(len(values), values, dataset=dataset, space=SPACE, arch_id=aid, arch=arch, seed=seed,
          checkpoint=codes[0], evaluation=codes[1], metric=codes[2], key=codes[3], device=device, timestamp=stamp)


# ---------------------------------------------------------------- export


def _decoded(table: pa.Table, column: str) -> tuple[np.ndarray, list[str | None]]:
    col = table.column(column).combine_chunks()
    if not pa.types.is_dictionary(col.type):
        col = col.dictionary_encode()
    idx = col.indices.fill_null(-1).to_numpy(zero_copy_only=False)
    return idx, col.dictionary.to_pylist()


def _where(idx: np.ndarray, words: list, value: str) -> np.ndarray:
    return idx == (words.index(value) if value in words else -2)


def iter_long_records(table: pa.Table, *, dataset: str = DATASET) -> Iterator[dict[str, Any]]:
    """Published records (ascending arch_id) of the WRN rows of `table` that hold a complete record."""
    sp, sp_w = _decoded(table, "space")
    ds, ds_w = _decoded(table, "dataset")
    keep = _where(sp, sp_w, SPACE) & _where(ds, ds_w, dataset)
    t = table.filter(pa.array(keep)) if not keep.all() else table
    aid = t.column("arch_id").to_numpy()
    if (np.diff(aid) < 0).any():  # stable: keeps each record's row order (tables written by arch are sorted)
        t = t.take(pc.sort_indices(t, [("arch_id", "ascending")]))
        aid = t.column("arch_id").to_numpy()
    value = t.column("value").to_numpy()
    ev, ev_w = _decoded(t, "evaluation")
    me, me_w = _decoded(t, "metric")
    ky, ky_w = _decoded(t, "key")
    ck, ck_w = _decoded(t, "checkpoint")
    ids, first = np.unique(aid, return_index=True)
    n = len(ids)
    group = np.searchsorted(ids, aid)

    def pick(evaluation: str, metric: str, checkpoint: str) -> np.ndarray:
        return _where(ev, ev_w, evaluation) & _where(me, me_w, metric) & _where(ck, ck_w, checkpoint)

    def scalar(mask: np.ndarray) -> np.ndarray:
        out = np.full(n, np.nan)
        out[group[mask]] = value[mask]
        return out

    shapes: dict[bytes, Any] = {}

    def corruption_shape(keys: np.ndarray, metrics: np.ndarray):
        """The builder of a record's `corruptions` dict from its rows' values, one per distinct row layout (all
        records of a sweep share one): {name: {severity: {metric: value}}} in row order."""
        sig = keys.tobytes() + b"|" + metrics.tobytes()
        if sig not in shapes:
            nested: dict[str, dict[str, list[tuple[str, int]]]] = {}
            for i, (k, m) in enumerate(zip(keys.tolist(), metrics.tolist(), strict=True)):
                name, _, sev = ky_w[k].partition("/")
                nested.setdefault(name, {}).setdefault(sev, []).append((me_w[m], i))
            items = [(name, list(sevs.items())) for name, sevs in nested.items()]
            shapes[sig] = lambda v: {name: {sev: {m: v[i] for m, i in ms} for sev, ms in sevs} for name, sevs in items}
        return shapes[sig]

    key_int = np.array([int(k) if k and k.isdigit() else -1 for k in ky_w], dtype=np.int64)
    hist = {}
    for h in HISTORY_KEYS:
        m = np.flatnonzero(pick(TRAIN, h, ""))
        order = m[np.lexsort((key_int[ky[m]], group[m]))]
        counts = np.bincount(group[order], minlength=n)
        hist[h] = (np.split(value[order], np.cumsum(counts)[:-1]), counts)
    train_rows = pick(TRAIN, "best_epoch", "")
    best, ttime = scalar(train_rows), scalar(pick(TRAIN, "training_time", ""))
    tests = {k: scalar(pick(*TEST_PAIRS[k], CHECKPOINT)) for k in TEST_KEYS}
    params, macs = scalar(pick("complexity", "params", CHECKPOINT)), scalar(pick("complexity", "macs", CHECKPOINT))
    corr_rows = np.flatnonzero(_where(ev, ev_w, "corruptions") & _where(ck, ck_w, CHECKPOINT))
    corr_split = np.searchsorted(group[corr_rows], np.arange(n + 1))
    seed = t.column("seed").to_numpy(zero_copy_only=False)
    dv, dv_w = _decoded(t, "device")
    ts, ts_w = _decoded(t, "timestamp")
    ar, ar_w = _decoded(t, "arch")
    train_first = np.full(n, -1)
    tr_idx = np.flatnonzero(train_rows)
    train_first[group[tr_idx]] = tr_idx
    for g in range(n):
        if train_first[g] < 0 or any(np.isnan(tests[k][g]) for k in TEST_KEYS) or np.isnan(params[g]):
            continue  # not a complete record (e.g. a run still being evaluated)
        r = train_first[g]
        train = {"seed": int(seed[r]), "gpu_type": dv_w[dv[r]], "timestamp": ts_w[ts[r]],
                 "training_time": float(ttime[g]), "best_epoch": int(best[g])}
        for h in HISTORY_KEYS:
            train[h] = hist[h][0][g].tolist()
        test: dict[str, Any] = {k: float(tests[k][g]) for k in TEST_KEYS}
        rows = corr_rows[corr_split[g]:corr_split[g + 1]]
        test["corruptions"] = corruption_shape(ky[rows], me[rows])(value[rows].tolist())
        yield {"arch_id": int(ids[g]), "arch": Arch.parse(ar_w[ar[first[g]]]).to_jsonl_dict(),
               "MACs": millions(int(macs[g])), "Params": millions(int(params[g])), "train": [train],
               "test_best": [test]}


def long_to_records(table: pa.Table, *, dataset: str = DATASET) -> list[dict[str, Any]]:
    return list(iter_long_records(table, dataset=dataset))


def write_long_jsonl(table: pa.Table, path: str | Path, *, dataset: str = DATASET) -> int:
    """Write the published `cifar10.jsonl` of `table` (atomically); returns the number of records."""
    return write_jsonl(path, iter_long_records(table, dataset=dataset))


def write_results_jsonl(root: str | Path, path: str | Path, *, dataset: str = DATASET) -> int:
    """Write the published `cifar10.jsonl` of the long results table stored under `root` (atomically), one shard
    in memory at a time; returns the number of records."""
    from nares.results.store import iter_shards

    return write_jsonl(path, (rec for t in iter_shards(root) for rec in iter_long_records(t, dataset=dataset)))
