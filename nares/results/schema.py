"""The long-format results table: one row per computed value, the factory's source of truth.

Columns (`LONG_SCHEMA`): dataset, space, arch_id, arch (the space's canonical string), seed, checkpoint
("" for values not tied to a checkpoint: training history, complexity of an imported record), evaluation,
version (null when unknown, e.g. imported from a published file), settings_hash (null when unknown),
metric, key ("" for none; the epoch for `train`, "<corruption>/<severity>" for `corruptions`, else ε, σ,
class...), value, device, device_seconds, timestamp, code_version.

Units: each (evaluation, metric) declares one (`unit_of`): "percent" for accuracy-type metrics (the unit
the published records use, so a published value is stored as itself and exported bit for bit), "count" for
exact counts (params, MACs), "raw" otherwise. Wide tables hold fractions: `fraction_from_pct` of the
percentage (the same floats today's tables hold). One spelling per concept: the pair (evaluation, metric)
is canonical (`fgsm`, `acc`); the wide column is `wide_column` (`fgsm_acc`), the Metric enum name
`metric_name` (`TEST_FGSM_ACC`).
"""

from __future__ import annotations

import pyarrow as pa

from nares.records import HISTORY_KEYS, HISTORY_PCT

_D = pa.dictionary(pa.int32(), pa.string())
LONG_SCHEMA = pa.schema([
    ("dataset", _D), ("space", _D), ("arch_id", pa.int32()), ("arch", _D), ("seed", pa.int64()),
    ("checkpoint", _D), ("evaluation", _D), ("version", pa.int32()), ("settings_hash", _D), ("metric", _D),
    ("key", _D), ("value", pa.float64()), ("device", _D), ("device_seconds", pa.float64()), ("timestamp", _D),
    ("code_version", _D),
])
LONG_COLUMNS: tuple[str, ...] = tuple(LONG_SCHEMA.names)
# The columns `nares results` prints, in order.
SHOWN_COLUMNS: tuple[str, ...] = ("dataset", "space", "arch_id", "checkpoint", "evaluation", "version", "metric",
                                  "key", "value")
# The confusion cells' C×C matrices (`nares.evaluate.confusion`): their keys end in "<true class>/<predicted class>".
MATRIX_METRICS: tuple[str, ...] = ("cm", "conf_true", "conf_pred")
TRAIN = "train"  # the evaluation of training: one metric per history key (key = epoch), best_epoch, training_time
TRAIN_UNITS: dict[str, str] = {**{k: ("percent" if k in HISTORY_PCT else "raw") for k in HISTORY_KEYS},
                               "best_epoch": "raw", "training_time": "raw"}


def unit_of(evaluation: str, metric: str) -> str:
    """The declared unit of (evaluation, metric): percent, count or raw (an undeclared metric is raw)."""
    if evaluation == TRAIN:
        return TRAIN_UNITS.get(metric, "raw")
    from nares.evaluations import evaluation_names, get_evaluation

    if evaluation in evaluation_names():
        return str(get_evaluation(evaluation).units.get(metric, "raw"))
    return "raw"


def wide_column(evaluation: str, metric: str) -> str:
    """The wide tables' column of (evaluation, metric): `<evaluation>_<metric>`."""
    return f"{evaluation}_{metric}"


def metric_name(evaluation: str, metric: str, split: str = "test") -> str:
    """The Metric enum name of (evaluation, metric): `TEST_FGSM_ACC`."""
    return f"{split}_{evaluation}_{metric}".upper()
