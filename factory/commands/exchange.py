"""`nares export FORMAT` and `nares import FORMAT`: published layouts of the neighbouring datasets ⇄ the long
results table. Format `jung` (Jung et al. 2023, PROTOCOL §7.2; `nares.exporters.jung`):

    nares export jung (--release V | --tables DIR) --out DIR [--id-map meta.json] [--checkpoint best]
    nares import jung DIR --out FOLDER [--version NAME]

Imports the library only when a command runs, so that `nares --help` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    exp = sub.add_parser("export", help="write the long results table in a published layout (jung)")
    fmt = exp.add_subparsers(dest="format", required=True, metavar="FORMAT")
    j = fmt.add_parser("jung", help="Jung et al.'s robustness-dataset layout: meta.json + <dataset>/<key>_<measure>.json")
    src = j.add_mutually_exclusive_group(required=True)
    src.add_argument("--release", metavar="V", help="a release version (its tables/results)")
    src.add_argument("--tables", metavar="DIR", type=Path, help="a tables folder holding results/part-*.parquet")
    j.add_argument("--out", required=True, type=Path, help="output folder (meta.json and one folder per dataset)")
    j.add_argument("--id-map", metavar="META", type=Path,
                   help="a meta.json giving NB201's 0-based index order and representatives (default: this "
                        "factory's ids, arch_id - 1)")
    j.add_argument("--checkpoint", default="best", help="the evaluated checkpoint whose rows are written (best)")
    j.set_defaults(func=_export_jung)

    imp = sub.add_parser("import", help="read a published layout into a folder the query API opens (jung)")
    fmt = imp.add_subparsers(dest="format", required=True, metavar="FORMAT")
    j = fmt.add_parser("jung", help="Jung et al.'s robustness-dataset files → long results table folder")
    j.add_argument("folder", type=Path, metavar="DIR", help="the file set: meta.json and <dataset>/<key>_<measure>.json")
    j.add_argument("--out", required=True, type=Path, help="a new folder: RELEASE.json, architectures.parquet, tables/")
    j.add_argument("--version", help="the name RELEASE.json gives the folder (default: its name)")
    j.set_defaults(func=_import_jung)


def _export_jung(args: argparse.Namespace) -> int:
    from nares.exporters.jung import JungIds, write_jung
    from nares.results.store import RESULTS_TABLE, read_results

    ids = JungIds.from_meta(args.id_map) if args.id_map else None  # checked before any table is read
    if args.release:
        from nares.release import fetch_release

        root = fetch_release(args.release) / "tables"
    else:
        root = args.tables
    if not (Path(root) / RESULTS_TABLE).is_dir():
        from nares.errors import NaresError

        raise NaresError(f"{root} holds no {RESULTS_TABLE}/ folder of the long results table")
    summary = write_jung(read_results(root), args.out, ids=ids, checkpoint=args.checkpoint)
    print(f"wrote {len(summary['files'])} files for {summary['architectures']} architectures "
          f"({', '.join(summary['datasets'])}; ids: {summary['ids']}) under {args.out}")
    if summary["left_out"]:
        print(f"left out (not in the layout): corruptions {', '.join(summary['left_out'])}", file=sys.stderr)
    return 0


def _import_jung(args: argparse.Namespace) -> int:
    from nares.exporters.jung import read_jung, write_long_folder

    imported = read_jung(args.folder)
    out = write_long_folder(imported, args.out, version=args.version, source=str(args.folder))
    n = len(set(imported.table.column("arch_id").to_pylist()))
    print(f"imported {len(imported.files)} files, {n} architectures ({', '.join(imported.datasets)}) into {out}")
    if imported.inexact:
        print(f"{imported.inexact} accuracies have no percentage that exports back to the same float (first: "
              f"{imported.first_inexact}); they are kept to within one ulp", file=sys.stderr)
    return 0
