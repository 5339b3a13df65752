"""`nares data fetch|info`: download the CIFAR datasets (checksummed, resumable) and list what is present."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

FETCHABLE = ("cifar10", "cifar10.1", "cifar10-c")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="CIFAR data: download and inspect")
    s = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    f = s.add_parser("fetch", help="download, verify (md5) and unpack a dataset into the data root")
    f.add_argument("dataset", choices=FETCHABLE)
    f.add_argument("--root", type=Path, help="data root (default: $NARES_DATA_DIR, else ~/.cache/nares/data)")
    f.add_argument("--mirror", help="base URL of a copy of the official files, used instead of their origin")
    f.set_defaults(func=_fetch)
    i = s.add_parser("info", help="list the datasets present under the data root, with image counts; "
                                  "exit status 2 when a present file is corrupt (one error line per bad file)")
    i.add_argument("--root", type=Path, help="data root (default: $NARES_DATA_DIR, else ~/.cache/nares/data)")
    i.set_defaults(func=_info)


class _ProgressLine:
    """Prints `name: 42% (71.6/170.5 MB)` to stderr at most once per percent."""

    def __init__(self) -> None:
        self.last: tuple[str, int] | None = None

    def __call__(self, name: str, done: int, total: int | None) -> None:
        pct = int(100 * done / total) if total else -1
        if (name, pct) == self.last:
            return
        self.last = (name, pct)
        size = f"{done / 1e6:.1f}/{total / 1e6:.1f} MB" if total else f"{done / 1e6:.1f} MB"
        print(f"\r{name}: {pct}% ({size})" if total else f"\r{name}: {size}", end="", file=sys.stderr, flush=True)


def _fetch(args: argparse.Namespace) -> int:
    from nares.data import fetch

    progress = _ProgressLine()
    try:
        folder = fetch(args.dataset, args.root, mirror=args.mirror, progress=progress)
    finally:
        if progress.last:
            print(file=sys.stderr)
    print(f"{args.dataset}: ready in {folder}")
    return 0


def _info(args: argparse.Namespace) -> int:
    from nares.data import data_inventory, data_root

    rows = data_inventory(args.root)
    print(f"data root: {args.root or data_root()}")
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        print(f"{r['name']:<{width}}  {r['status']:<10}  {r['path']}  {r['detail']}")
    problems = [p for r in rows for p in r["problems"]]
    for p in problems:
        print(f"nares: error: {p}", file=sys.stderr)
    return 2 if problems else 0
