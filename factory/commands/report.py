"""`nares report --out DIR`: the paper's analyses (PROTOCOL §8) as PNG figures and an HTML page; for a release of
another space, the long-table report of that space (`nares.analysis.long_report`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from factory.commands._source import add_source_args, open_from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="analysis report: figures (PNG), report.json and index.html")
    add_source_args(p)
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.set_defaults(func=_report)


def _report(args: argparse.Namespace) -> int:
    from nares.analysis.long_report import build_dataset_report
    from nares.analysis.report import build_report
    from nares.api.long import LongDataset

    ds = open_from_args(args)  # a release of another space: the long-table report of its space
    index = build_dataset_report(ds, args.out) if isinstance(ds, LongDataset) else build_report(ds, args.out)
    print(f"wrote {index}")
    return 0
