"""`nares results (RUN_DIR | --release V | --data FILE) [--json]`: the long-format rows of any value computed."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("results", help="print the long-format result rows of a run folder, a release or a jsonl")
    p.add_argument("run_dir", nargs="?", type=Path, metavar="RUN_DIR", help="a run folder (train_done.json, ledger)")
    p.add_argument("--release", metavar="V", help="a release version (local copy or the object store)")
    p.add_argument("--data", metavar="FILE", type=Path, help="a published-layout cifar10.jsonl")
    p.add_argument("--arch", action="append", metavar="A", help="an arch id or string (repeatable; in a release of a cell space, answered through its representative)")
    p.add_argument("--evaluation", action="append", metavar="E", help="an evaluation, e.g. pgd, train (repeatable)")
    p.add_argument("--metric", action="append", metavar="M", help="a metric, e.g. acc, train_acc (repeatable)")
    p.add_argument("--json", action="store_true", help="one JSON object per row instead of tab-separated columns")
    p.set_defaults(func=_results)


def _arch_ids(items: list[str] | None, space_name: str = "wrn") -> list[int] | None:
    """Arch ids of --arch values (ids or the source space's strings, a string through its class representative),
    checked before anything is read."""
    if items is None:
        return None
    from nares.spaces import get_space

    space = get_space(space_name)
    index = None
    out = []
    for item in items:
        if item.strip().isdigit():
            out.append(int(item))
        else:
            index = index or space.index()
            out.append(index.id_of(space.canonical(space.parse(item))))
    return out


def _source(args: argparse.Namespace) -> tuple[Any, Callable[[list[str] | None], list[int] | None]]:
    """(the long rows of the source, its --arch resolver): a run folder's space (train_done.json); a release of
    the long table answers an architecture through its id map and representative; the published layout is wrn."""
    from nares.errors import NaresError

    given = [g for g in (args.run_dir, args.release, args.data) if g is not None]
    if len(given) != 1:
        raise NaresError("give exactly one of RUN_DIR, --release V or --data FILE")
    from nares.exporters.nares_jsonl import read_jsonl_long

    if args.run_dir is not None:
        from nares.results import run_rows
        from nares.train.checkpoints import read_done

        space = str((read_done(args.run_dir) or {}).get("space", "wrn"))
        return (lambda: run_rows(args.run_dir)), lambda items: _arch_ids(items, space)
    if args.data is not None:
        return (lambda: read_jsonl_long(args.data)), _arch_ids
    from nares.api.long import is_long_release, open_long
    from nares.release import fetch_release
    from nares.results.store import RESULTS_TABLE, read_results

    folder = fetch_release(args.release)
    if is_long_release(folder):
        ds = open_long(folder)
        return (lambda: ds.results), lambda items: None if items is None else [
            ds.representative_id(int(a) if a.strip().isdigit() else a) for a in items]
    if (folder / "tables" / RESULTS_TABLE).is_dir():
        return (lambda: read_results(folder / "tables")), _arch_ids
    return (lambda: read_jsonl_long(folder / "cifar10.jsonl")), _arch_ids


def _results(args: argparse.Namespace) -> int:
    from nares.results import SHOWN_COLUMNS, filter_rows

    rows, resolve = _source(args)
    arch = resolve(args.arch)  # a bad architecture is refused before the rows are read
    table = filter_rows(rows(), arch=arch, evaluation=args.evaluation, metric=args.metric)
    cols = {c: table.column(c).to_pylist() for c in SHOWN_COLUMNS}
    out = sys.stdout
    if not args.json:
        out.write("\t".join(SHOWN_COLUMNS) + "\n")
    for row in zip(*cols.values(), strict=True):
        if args.json:
            out.write(json.dumps(dict(zip(SHOWN_COLUMNS, row, strict=True))) + "\n")
        else:
            out.write("\t".join(_text(v) for v in row) + "\n")
    return 0


def _text(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return repr(v)
    return str(v)
