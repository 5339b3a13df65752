"""`nares space export`: the design-space table (arch_id, arch, coordinates, params, MACs) of a search space."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("space", help="the search space")
    s = p.add_subparsers(dest="space_command", required=True, metavar="ACTION")
    e = s.add_parser("export", help="write every architecture with params and MACs (CSV or Parquet by extension)")
    e.add_argument("--out", required=True, type=Path, help="output file: .csv or .parquet")
    e.add_argument("--space", default="wrn", help="search space name (default wrn; plug-ins via NARES_PLUGINS)")
    e.add_argument("--scale", type=int, help="model scale of params/MACs (default: the space's, 16 for wrn)")
    e.add_argument("--id-map", type=Path, help="keep the arch ids of an existing release's cifar10.jsonl")
    e.set_defaults(func=_export)


def _export(args: argparse.Namespace) -> int:
    from nares.space_table import write_space_table

    n = write_space_table(args.out, id_map=args.id_map, space=args.space, width_base=args.scale)
    print(f"wrote {n} architectures to {args.out}")
    return 0
