"""The per-architecture summary table: one row per architecture with every `Metric` column.

Built from the store's tables (`architectures`, `runs`, `history`, `test_metrics`), reading only
the history rows of each best epoch. Internal units: accuracies as fractions, exact counts.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from nares.api.metrics import Metric
from nares.constants import CORRUPTIONS, SEVERITIES
from nares.errors import DataError
from nares.space_table import SPACE_SCHEMA

# history column → summary column (read at the best epoch)
HISTORY_AT_BEST = {
    "train_acc": Metric.TRAIN_ACC.column, "train_loss": Metric.TRAIN_LOSS.column, "val_loss": Metric.VAL_LOSS.column,
    "val_acc": Metric.VAL_CLEAN_ACC.column, "pgd": Metric.VAL_PGD_ACC.column, "cw": Metric.VAL_CW_ACC.column,
}
# test_metrics column → summary column
TEST_COLUMNS = {
    "test_clean_acc": Metric.TEST_CLEAN_ACC, "test_loss": Metric.TEST_LOSS, "fgsm_acc": Metric.TEST_FGSM_ACC,
    "fgsm_stable": Metric.TEST_FGSM_STABLE, "pgd_acc": Metric.TEST_PGD_ACC, "pgd_stable": Metric.TEST_PGD_STABLE,
    "pgd_lip": Metric.TEST_PGD_LIP, "cw_acc": Metric.TEST_CW_ACC, "cw_stable": Metric.TEST_CW_STABLE,
    "cw_lip": Metric.TEST_CW_LIP, "aa_acc": Metric.TEST_AA_ACC, "corrupt_acc": Metric.TEST_CORRUPT_ACC,
}
ARCH_COLUMNS = tuple(SPACE_SCHEMA.names)  # every column of the `architectures` table
# TEST_CORRUPT_ACC in percent, as the official class computes it (no round trip through a fraction)
CORRUPT_PCT = "test_corrupt_acc_pct"
N_CORRUPTIONS, N_SEVERITIES = len(CORRUPTIONS), len(SEVERITIES)


def table_files(root: Path, name: str) -> list[Path]:
    """The Parquet files of table `name` under a tables folder: `<root>/<name>/*.parquet` (the store's
    sharded layout) or `<root>/<name>.parquet` (a release's single file)."""
    folder, single = root / name, root / f"{name}.parquet"
    if folder.is_dir():
        return sorted(folder.glob("*.parquet"))
    return [single] if single.is_file() else []


def read_table_dir(root: Path, name: str, columns: list[str] | None = None, filters=None) -> pa.Table:
    """One table of a tables folder (either layout of `table_files`), optionally some columns/rows only."""
    files = table_files(root, name)
    if not files:
        raise DataError(f"table {name!r} is missing under {root}")
    source = files[0] if (root / f"{name}.parquet") in files else root / name
    return pq.read_table(source, columns=columns, filters=filters)


def corrupt_acc_pct(cells_per_arch: np.ndarray, names: np.ndarray, severities: np.ndarray,
                    acc_pct: np.ndarray) -> np.ndarray:
    """TEST_CORRUPT_ACC (percent) of each architecture, computed as the official NARes class does.

    Rows are corruption cells grouped by architecture (`cells_per_arch[i]` rows each, in file order).
    A complete grid (19 distinct corruptions × severities 1..5) gives the mean over severities of the
    mean over corruptions, with numpy's summation order (`grid.mean(axis=0)`, then `np.mean`), so the
    value is bit-identical to the official one; an incomplete grid gives the mean of its cells; none, NaN.
    """
    n = len(cells_per_arch)
    out = np.full(n, np.nan)
    starts = np.cumsum(cells_per_arch) - cells_per_arch
    full = np.flatnonzero(cells_per_arch == N_CORRUPTIONS * N_SEVERITIES)
    if len(full):
        rows = starts[full][:, None] + np.arange(N_CORRUPTIONS * N_SEVERITIES)[None, :]
        sev = severities[rows].reshape(len(full), N_CORRUPTIONS, N_SEVERITIES).astype(np.int64)
        name = names[rows].reshape(len(full), N_CORRUPTIONS, N_SEVERITIES)
        order = np.argsort(sev, axis=2, kind="stable")
        sev = np.take_along_axis(sev, order, axis=2)
        grid = np.ascontiguousarray(np.take_along_axis(acc_pct[rows].reshape(sev.shape), order, axis=2))
        first = np.sort(name[:, :, 0], axis=1)
        ok = ((sev == np.arange(1, N_SEVERITIES + 1)).all(axis=(1, 2)) & (name == name[:, :, :1]).all(axis=(1, 2))
              & (np.diff(first, axis=1) != 0).all(axis=1))
        out[full[ok]] = grid[ok].mean(axis=1).mean(axis=1)
        partial = np.setdiff1d(np.flatnonzero(cells_per_arch > 0), full[ok])
    else:
        partial = np.flatnonzero(cells_per_arch > 0)
    for i in partial:
        out[i] = math.fsum(acc_pct[starts[i]:starts[i] + cells_per_arch[i]]) / cells_per_arch[i]
    return out


def corrupt_acc_of_table(corr: pa.Table, ids: np.ndarray) -> np.ndarray:
    """`corrupt_acc_pct` of the architectures `ids` from a `corruptions` table (fractions)."""
    from nares.records import pct_from_fraction

    order = pc.sort_indices(corr, sort_keys=[("arch_id", "ascending")])  # stable: keeps the written order
    corr = corr.take(order)
    c_ids = corr.column("arch_id").to_numpy()
    counts = np.zeros(len(ids), dtype=np.int64)
    pos = np.searchsorted(ids, c_ids)
    known = (pos < len(ids)) & (ids[np.minimum(pos, len(ids) - 1)] == c_ids)
    np.add.at(counts, pos[known], 1)
    keep = np.flatnonzero(known)
    names = pc.dictionary_encode(corr.column("corruption")).combine_chunks().indices.to_numpy()
    acc = pct_from_fraction(corr.column("acc").to_numpy(zero_copy_only=False).astype(np.float64))
    return corrupt_acc_pct(counts, names[keep], corr.column("severity").to_numpy()[keep], acc[keep])


def build_summary(root: Path) -> pa.Table:
    """The summary of the tables folder `root`, sorted by arch_id."""
    tables = {
        "architectures": read_table_dir(root, "architectures", list(ARCH_COLUMNS)),
        "runs": read_table_dir(root, "runs", ["arch_id", "best_epoch"]),
        "test_metrics": read_table_dir(root, "test_metrics", ["arch_id", *TEST_COLUMNS]),
        "history": read_table_dir(root, "history", ["arch_id", "epoch", *HISTORY_AT_BEST]),
    }
    ids = np.sort(tables["architectures"].column("arch_id").to_numpy())
    try:
        corr = read_table_dir(root, "corruptions", ["arch_id", "corruption", "severity", "acc"])
    except DataError:
        corr = None
    corrupt = corrupt_acc_of_table(corr, ids) if corr is not None else np.full(len(ids), np.nan)
    return summary_from_tables(tables, corrupt)


def summary_from_tables(tables: dict[str, pa.Table], corrupt_pct: np.ndarray) -> pa.Table:
    """The summary of in-memory record tables; `corrupt_pct` is `corrupt_acc_pct` in arch_id order."""
    arch = tables["architectures"].select(list(ARCH_COLUMNS)).sort_by("arch_id")
    runs, test, hist = tables["runs"], tables["test_metrics"], tables["history"]
    ids = arch.column("arch_id").to_numpy()
    n_max = int(ids.max()) + 1 if len(ids) else 1
    best = np.full(n_max, -1, dtype=np.int64)
    best[runs.column("arch_id").to_numpy()] = runs.column("best_epoch").to_numpy()
    h_ids, h_epoch = hist.column("arch_id").to_numpy(), hist.column("epoch").to_numpy()
    keep = np.flatnonzero((h_ids < n_max) & (h_epoch == best[np.minimum(h_ids, n_max - 1)]))
    pos = np.full(n_max, -1, dtype=np.int64)
    pos[h_ids[keep]] = keep
    cols: dict[str, np.ndarray | pa.Array] = {c: arch.column(c) for c in ARCH_COLUMNS}
    cols[Metric.BEST_EPOCH.column] = pa.array(best[ids], type=pa.int16())
    missing = ids[pos[ids] < 0]
    if len(missing):
        raise DataError(f"arch_id {int(missing[0])} has no history row at its best epoch ({len(missing)} such architectures)")
    for src, dst in HISTORY_AT_BEST.items():
        cols[dst] = hist.column(src).to_numpy()[pos[ids]]
    t_pos = np.full(n_max, -1, dtype=np.int64)
    t_pos[test.column("arch_id").to_numpy()] = np.arange(test.num_rows)
    if (t_pos[ids] < 0).any():
        raise DataError(f"arch_id {int(ids[t_pos[ids] < 0][0])} has no test_metrics row")
    for src, m in TEST_COLUMNS.items():
        cols[m.column] = test.column(src).take(pa.array(t_pos[ids]))
    cols[CORRUPT_PCT] = np.asarray(corrupt_pct, dtype=np.float64)
    return pa.table(cols)
