"""Which evaluation cells `re-evaluate` must compute: (arch, checkpoint, metric, metric_version) cells that
the ledger lacks, or holds only at an older metric version, or holds only as failed.

A cell is current when the ledger has a row for it with a finished status (`done`/`ok`) and `metric_version` equal to the
version in the preset's `eval.metric_versions` (bumping a version there makes every cell of that metric stale).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

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
                checkpoints: Iterable[str], *, training_hash: str | None = None) -> list[Cell]:
    """Cells to (re)compute for `arch_ids` × `checkpoints` × `metric_versions`, sorted.

    With `training_hash` (the preset's `nares.train.runtime.training_hash`), runs whose ledger training row
    holds another hash are refused (SweepError) before any job: evaluating them under this preset is wrong.
    """
    if training_hash is not None:
        check_training_hash(ledger, arch_ids, training_hash)
    current = {
        (int(r["arch_id"]), r["checkpoint"], r["metric"], int(r["metric_version"]))
        for r in _rows(ledger) if r.get("status", "done") in FINISHED
    }
    return sorted(
        Cell(int(a), c, m, int(v))
        for a in set(arch_ids) for c in checkpoints for m, v in metric_versions.items()
        if (int(a), c, m, int(v)) not in current
    )


def check_training_hash(ledger, arch_ids: Iterable[int], training_hash: str) -> None:
    """SweepError naming the `arch_ids` whose ledger training row was written under another training hash."""
    from nares.store.ingest import TRAIN_METRIC
    from nares.sweep.selection import SweepError

    trained = {int(r["arch_id"]): r.get("preset_hash") for r in _rows(ledger) if r.get("metric") == TRAIN_METRIC}
    foreign = sorted(a for a in set(arch_ids) if trained.get(a, training_hash) != training_hash)
    if foreign:
        more = f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
        raise SweepError(f"arch id(s) {', '.join(map(str, foreign[:5]))}{more} were trained with training hash "
                         f"{trained[foreign[0]]}, not this preset's {training_hash}: re-evaluating them would record "
                         "wrong cells")


def group_by_run(cells: Iterable[Cell]) -> dict[tuple[int, str], list[str]]:
    """{(arch_id, checkpoint): [metric, ...]}: one evaluation job per architecture and checkpoint."""
    out: dict[tuple[int, str], list[str]] = {}
    for c in sorted(cells):
        out.setdefault((c.arch_id, c.checkpoint), []).append(c.metric)
    return out


def stale_groups(cfg: Mapping, tables_root: str | Path) -> tuple[dict[tuple[int, str], list[str]], str]:
    """The stale or missing cells of every architecture in the tables of `tables_root` under the resolved
    preset `cfg`, grouped by run (`group_by_run`), and one line saying what was found. Metrics that cannot
    be computed here (CIFAR-10-C absent) are not scheduled; runs of another training preset are refused."""
    from nares.data import corruptions_available
    from nares.store.tables import read_tables
    from nares.train.runtime import training_hash

    if not Path(tables_root).is_dir():
        return {}, f"no tables at {tables_root} yet"
    versions = dict(cfg["eval"]["metric_versions"])
    if not corruptions_available():
        versions.pop("corruptions", None)     # cannot be computed here; not scheduled night after night
    t = read_tables(tables_root, ["manifest", "ledger"])
    arch_ids = set(t["manifest"].column("arch_id").to_pylist())
    cells = stale_cells(t["ledger"], arch_ids, versions, cfg["sweep"]["reevaluate_checkpoints"],
                        training_hash=training_hash(cfg))
    return group_by_run(cells), (f"{len(cells)} stale or missing cell(s) over "
                                 f"{len({c.arch_id for c in cells})} architecture(s)")


def reevaluate_jobs(cfg: Mapping, groups: Mapping[tuple[int, str], list[str]]
                    ) -> tuple[list[tuple[int, str]], dict[int, list[tuple[str, list[str]]]]]:
    """The re-evaluation jobs of `groups` (one per architecture, (arch_id, arch string) in id order, ids of the
    preset's search space) and each architecture's cells: arch_id → [(checkpoint, [metric, ...]), ...]."""
    from nares.spaces import space_for

    space = space_for(cfg)
    index = space.index()
    cells: dict[int, list[tuple[str, list[str]]]] = {}
    for (arch_id, checkpoint), metrics in sorted(groups.items()):
        cells.setdefault(arch_id, []).append((checkpoint, metrics))
    return [(a, space.format(index.arch_of(a))) for a in sorted(cells)], cells
