"""The per-architecture summary table: one row per architecture with every `Metric` column.

Built from the store's tables (`architectures`, `runs`, `history`, `test_metrics`), reading only
the history rows of each best epoch. Internal units: accuracies as fractions, exact counts.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from nares.api.metrics import Metric
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


def build_summary(root: Path) -> pa.Table:
    """The summary of the tables folder `root`, sorted by arch_id."""
    arch = read_table_dir(root, "architectures", list(ARCH_COLUMNS)).sort_by("arch_id")
    runs = read_table_dir(root, "runs", ["arch_id", "best_epoch"])
    test = read_table_dir(root, "test_metrics", ["arch_id", *TEST_COLUMNS])
    hist = read_table_dir(root, "history", ["arch_id", "epoch", *HISTORY_AT_BEST])
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
    return pa.table(cols)
