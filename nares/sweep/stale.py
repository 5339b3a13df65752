"""Which evaluation cells `re-evaluate` must compute: (arch, checkpoint, metric, metric_version) cells that
the ledger lacks, or holds only at an older metric version, or holds only as failed.

A cell is current when the ledger has a row for it with a finished status (`done`/`ok`) and `metric_version` equal to the
version in the preset's `eval.metric_versions` (bumping a version there makes every cell of that metric stale). The
metrics are those of a named suite (`nares.evaluations.suite`): a suite with a new evaluation, or a new version of
one, schedules only its cells. Without a suite (the nightly deployment), they are the evaluations the ledger already
holds (what the run set was swept and re-evaluated with), so cells are kept current without adding a suite nobody
asked for; a ledger with no evaluated cell yet takes the preset's suite (`eval.suite`, else `nares`). Each job's
architecture string is the one
the tables hold for its arch_id (the long results table's `arch`), so runs of a sampled space (RobNet, whose ids are
positions in a seeded draw) are re-evaluated without re-drawing the sample.
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


def group_by_run(cells: Iterable[Cell], order: Iterable[str] = ()) -> dict[tuple[int, str], list[str]]:
    """{(arch_id, checkpoint): [metric, ...]}: one evaluation job per architecture and checkpoint, its metrics in
    the order of `order` (a suite's: `masking` reads the cells computed before it), the others after, by name."""
    rank = {m: i for i, m in enumerate(order)}
    out: dict[tuple[int, str], list[str]] = {}
    for c in sorted(cells):
        out.setdefault((c.arch_id, c.checkpoint), []).append(c.metric)
    return {k: sorted(ms, key=lambda m: (rank.get(m, len(rank)), m)) for k, ms in out.items()}


def suite_versions(cfg: Mapping, suite: str | None = None) -> dict[str, int]:
    """{evaluation: current version} of suite `suite` (default: the preset's `eval.suite`, else `nares`), in the
    suite's order."""
    from nares.evaluations import get_evaluation
    from nares.sweep.request import suite_evaluations

    return {m: get_evaluation(m).version(cfg) for m in suite_evaluations(cfg, suite)}


def held_versions(cfg: Mapping, ledger) -> dict[str, int]:
    """{evaluation: current version} of the evaluations the ledger holds cells of, in the order of the preset's
    suites (`nares` first, then `eval.suites`; so `masking` follows what it reads); an evaluation no registered
    plug-in provides is one SweepError line."""
    from nares.errors import NaresError
    from nares.evaluations import get_evaluation, suites
    from nares.store.ingest import TRAIN_METRIC
    from nares.sweep.selection import SweepError

    held = {r["metric"] for r in _rows(ledger) if r.get("metric") and r["metric"] != TRAIN_METRIC}
    rank = {m: i for i, m in enumerate(dict.fromkeys(m for members in suites(cfg).values() for m in members))}
    out: dict[str, int] = {}
    for m in sorted(held, key=lambda m: (rank.get(m, len(rank)), m)):
        try:
            out[m] = get_evaluation(m).version(cfg)
        except NaresError as e:
            raise SweepError(f"the ledger holds cells of evaluation {m!r}: {e} (load its plug-in with "
                             "NARES_PLUGINS, or name a suite)") from None
    return out


def stale_groups(cfg: Mapping, tables_root: str | Path, suite: str | None = None
                 ) -> tuple[dict[tuple[int, str], list[str]], str]:
    """The stale or missing cells of every architecture in the tables of `tables_root` under the resolved preset
    `cfg`, of `suite`'s evaluations, or without a suite of those the ledger holds (`held_versions`; none yet: the
    preset's suite), grouped by run (`group_by_run`, in suite order), and one line saying what was found. Metrics
    that cannot be computed here (`not_evaluable`: CIFAR-10-C absent) are not scheduled; runs of another training
    preset are refused."""
    from nares.store.tables import read_tables
    from nares.sweep.request import not_evaluable
    from nares.train.runtime import training_hash

    if not Path(tables_root).is_dir():
        return {}, f"no tables at {tables_root} yet"
    t = read_tables(tables_root, ["manifest", "ledger"])
    versions = (held_versions(cfg, t["ledger"]) if suite is None else {}) or suite_versions(cfg, suite)
    for name in not_evaluable(cfg, versions):
        versions.pop(name)                    # cannot be computed here; not scheduled night after night
    arch_ids = set(t["manifest"].column("arch_id").to_pylist())
    cells = stale_cells(t["ledger"], arch_ids, versions, cfg["sweep"]["reevaluate_checkpoints"],
                        training_hash=training_hash(cfg))
    return group_by_run(cells, versions), (f"{len(cells)} stale or missing cell(s) over "
                                           f"{len({c.arch_id for c in cells})} architecture(s) of "
                                           f"{', '.join(versions) or 'no evaluation'}")


def stored_archs(tables_root: str | Path, space: str) -> dict[int, str]:
    """{arch_id: arch string} of the runs of `space` the tables under `tables_root` hold: the long results table's
    `arch` column (the id map the sweep used; for a sampled space the only record of it), else, for WRN tables
    written before that table, the `architectures` table."""
    import pyarrow.parquet as pq

    from nares.results.store import RESULTS_TABLE

    out: dict[int, str] = {}
    for path in sorted((Path(tables_root) / RESULTS_TABLE).glob("part-*.parquet")):
        t = pq.read_table(path, columns=["space", "arch_id", "arch"], filters=[("space", "=", space)])
        t = t.group_by(["arch_id", "arch"]).aggregate([])
        for aid, arch in zip(t.column("arch_id").to_pylist(), t.column("arch").to_pylist(), strict=True):
            if out.setdefault(int(aid), str(arch)) != str(arch):
                from nares.sweep.selection import SweepError

                raise SweepError(f"{tables_root}: arch_id {aid} names two architectures ({out[int(aid)]} and {arch})")
    if not out and space == "wrn" and (Path(tables_root) / "architectures").is_dir():
        from nares.store.tables import read_tables

        arch = read_tables(tables_root, ["architectures"])["architectures"]
        out = dict(zip(arch.column("arch_id").to_pylist(), map(str, arch.column("arch").to_pylist()), strict=True))
    return out


def reevaluate_jobs(cfg: Mapping, groups: Mapping[tuple[int, str], list[str]], tables_root: str | Path | None = None
                    ) -> tuple[list[tuple[int, str]], dict[int, list[tuple[str, list[str]]]]]:
    """The re-evaluation jobs of `groups` (one per architecture, (arch_id, arch string) in id order) and each
    architecture's cells: arch_id → [(checkpoint, [metric, ...]), ...]. An arch_id's string is the one the tables
    under `tables_root` hold for it (`stored_archs`), else, in an enumerable space, its default id's; an id neither
    knows (a sampled space's run missing from the tables) is one SweepError line."""
    from nares.spaces import space_for
    from nares.sweep.selection import SweepError

    space = space_for(cfg)
    cells: dict[int, list[tuple[str, list[str]]]] = {}
    for (arch_id, checkpoint), metrics in sorted(groups.items()):
        cells.setdefault(arch_id, []).append((checkpoint, metrics))
    known = stored_archs(tables_root, space.name) if tables_root is not None and cells else {}
    unknown = [a for a in sorted(cells) if a not in known]
    if unknown and space.size is None:
        raise SweepError(f"arch id(s) {', '.join(map(str, unknown[:5]))} of space {space.name!r} have no architecture "
                         f"in the results table{f' under {tables_root}' if tables_root else ''}: their sweep's sample "
                         "is not recorded there")
    index = space.index() if unknown else None

    def arch_of(a: int) -> str:
        return space.format(space.parse(known[a])) if a in known else space.format(index.arch_of(a))

    return [(a, arch_of(a)) for a in sorted(cells)], cells
