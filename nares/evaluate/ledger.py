"""DIR/evaluations.jsonl: one line per finished evaluation cell, keyed by (arch, checkpoint, metric, metric_version).

A cell also records the hash of the evaluation settings it was computed under; a cell computed
under other settings does not count as present, and its cost: `device` (the device's name, `cpu` or the
GPU's) and `device_seconds` (the wall time the device was held, synchronised on CUDA), the convention of
every phase (training too: `train_done.json` phases). The file is rewritten atomically per cell.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nares.errors import NaresError
from nares.io import atomic_write

EVAL_FILE = "evaluations.jsonl"


class LedgerError(NaresError):
    """An unreadable evaluations file."""


def read_cells(out_dir: Path) -> list[dict[str, Any]]:
    path = Path(out_dir) / EVAL_FILE
    if not path.exists():
        return []
    cells = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                cells.append(json.loads(line))
            except json.JSONDecodeError:
                raise LedgerError(f"{path} line {n} is not JSON") from None
    return cells


def find_cell(cells: list[dict[str, Any]], *, arch: str, checkpoint: str, metric: str, metric_version: int,
              preset_hash: str) -> dict[str, Any] | None:
    """The latest matching finished cell, or None."""
    for cell in reversed(cells):
        if (cell["arch"], cell["checkpoint"], cell["metric"], cell["metric_version"], cell["preset_hash"]) == (
            arch, checkpoint, metric, metric_version, preset_hash,
        ) and cell["status"] == "done":
            return cell
    return None


def append_cell(out_dir: Path, cell: dict[str, Any]) -> None:
    """Add one cell; the file is replaced atomically, so a kill leaves the old or the new file, never half."""
    path = Path(out_dir) / EVAL_FILE
    old = path.read_text() if path.exists() else ""
    if old and not old.endswith("\n"):
        old += "\n"
    with atomic_write(path, "w") as fh:
        fh.write(old + json.dumps(cell, sort_keys=True) + "\n")
