"""The query API of a NARes release: `open_dataset`, `Dataset`, `Metric`, `get_metric`.

Owns reading releases and published-layout jsonl files for users; must not import Prefect, Ray,
the training or evaluation code. Values are in the published units (see `nares.api.metrics`).
"""

from nares.api.checkpoints import CheckpointError, local_fetcher, s3_fetcher, store_fetcher
from nares.api.dataset import Dataset, open_dataset, open_folder
from nares.api.metrics import Metric, MetricError, get_metric

__all__ = [
    "CheckpointError", "Dataset", "Metric", "MetricError", "get_metric", "local_fetcher", "open_dataset",
    "open_folder", "s3_fetcher", "store_fetcher",
]
