"""Which evaluation cells `re-evaluate` must compute: (arch, checkpoint, metric, metric_version) cells that
the ledger lacks, or holds only at an older metric version, or holds only as failed.

A cell is current when the ledger has a row for it with a finished status (`done`/`ok`) and `metric_version` equal to the
version in the preset's `eval.metric_versions` (bumping a version there makes every cell of that metric stale).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

FINISHED = frozenset({"done", "ok"})


@dataclass(frozen=True, order=True)
class Cell:
    arch_id: int
    checkpoint: str
    metric: str
    metric_version: int


def _rows(ledger) -> list[dict]:
    return ledger.to_pylist() if hasattr(ledger, "to_pylist") else list(ledger or ())


def stale_cells(ledger, arch_ids: Iterable[int], metric_versions: Mapping[str, int],
                checkpoints: Iterable[str]) -> list[Cell]:
    """Cells to (re)compute for `arch_ids` × `checkpoints` × `metric_versions`, sorted."""
    current = {
        (int(r["arch_id"]), r["checkpoint"], r["metric"], int(r["metric_version"]))
        for r in _rows(ledger) if r.get("status", "done") in FINISHED
    }
    return sorted(
        Cell(int(a), c, m, int(v))
        for a in set(arch_ids) for c in checkpoints for m, v in metric_versions.items()
        if (int(a), c, m, int(v)) not in current
    )


def group_by_run(cells: Iterable[Cell]) -> dict[tuple[int, str], list[str]]:
    """{(arch_id, checkpoint): [metric, ...]}: one evaluation job per architecture and checkpoint."""
    out: dict[tuple[int, str], list[str]] = {}
    for c in sorted(cells):
        out.setdefault((c.arch_id, c.checkpoint), []).append(c.metric)
    return out
