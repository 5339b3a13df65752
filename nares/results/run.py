"""The long rows of one run folder: its training (`train_done.json`) and its evaluation cells (the ledger)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from nares.records import HISTORY_PCT, pct_from_fraction
from nares.results.build import LongBuilder
from nares.results.schema import TRAIN

DEFAULT_DATASET = "cifar10"


def run_rows(run_dir: str | Path, *, arch_id: int | None = None) -> pa.Table:
    """Every value of a run folder as long rows: `train` (history per epoch in percent where the published
    record has percent, best_epoch, training_time in device-days), then each finished ledger cell through its
    evaluation's `values` (the latest cell per (checkpoint, evaluation, version, settings hash)).

    `arch_id` (default: the ledger's, else the space's index) is the id the rows carry. A folder without a
    finished training run raises RunError (one line naming it)."""
    from nares.evaluate.ledger import read_cells
    from nares.evaluations import get_evaluation
    from nares.spaces import recorded_space
    from nares.train.checkpoints import RunError, read_done

    run_dir = Path(run_dir)
    done = read_done(run_dir)
    if done is None:
        raise RunError(f"{run_dir} holds no finished training run (no train_done.json)")
    space = recorded_space(done)
    arch = space.parse(done["arch"])
    arch_s = space.format(arch)
    dataset = str(done.get("dataset", DEFAULT_DATASET))
    cells = [c for c in read_cells(run_dir) if c.get("status") == "done"]
    if arch_id is not None:
        aid = int(arch_id)
    elif cells and cells[0].get("arch_id") is not None:
        aid = int(cells[0]["arch_id"])
    else:  # a space too large to enumerate has no default id: its runs are read under the sweep's ids
        aid = space.index().id_of(space.canonical(arch))
    base = {"dataset": dataset, "space": space.name, "arch_id": aid, "arch": arch_s, "seed": int(done["seed"])}
    b = LongBuilder()
    train = {**base, "checkpoint": "", "evaluation": TRAIN, "device": done.get("gpu_type"),
             "timestamp": done.get("timestamp"), "code_version": done.get("code_version")}
    for h, values in done["history"].items():
        v = np.asarray(values, dtype=np.float64)
        b.add(len(v), pct_from_fraction(v) if h in HISTORY_PCT else v, metric=h,
              key=[str(e) for e in range(len(v))], **train)
    b.add(2, [done["best_epoch"], done["training_time_device_days"]], metric=["best_epoch", "training_time"],
          key="", **train)
    latest = {}
    for c in cells:
        latest[(c["checkpoint"], c["metric"], c["metric_version"], c["preset_hash"])] = c
    for c in latest.values():
        vals = get_evaluation(c["metric"]).values(c["values"])
        b.add(len(vals), [v.value for v in vals], **base, checkpoint=c["checkpoint"], evaluation=c["metric"],
              version=int(c["metric_version"]), settings_hash=c["preset_hash"], metric=[v.metric for v in vals],
              key=[v.key for v in vals], device=c.get("device"), device_seconds=float(c.get("device_seconds", 0.0)),
              timestamp=c.get("finished_at"), code_version=c.get("code_version"))
    return b.table()
