"""`nares data fetch|info|make-cifar10c`: download the CIFAR datasets (checksummed, resumable), list what is
present, and generate CIFAR-10-C from CIFAR-10 test images (`nares.data.make_cifar10c`)."""

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
    m = s.add_parser("make-cifar10c", help="generate CIFAR-10-C (19 corruptions x severities 1..5, CIFAR-10-C's "
                                           "constants, seeded) from CIFAR-10 test images, in the official layout "
                                           "with a checksummed manifest.json")
    m.add_argument("--source", choices=("subset", "cifar10"),
                   help="test images: the full CIFAR-10 test set (cifar10) or the offline subset's first 1,017 "
                        "(subset); default: cifar10 when it is under the data root, else subset")
    m.add_argument("--out", type=Path, help="output folder (default: $NARES_HOME/data/cifar10-c, which the readers "
                                            "use when the data root holds no complete CIFAR-10-C)")
    m.add_argument("--seed", type=int, default=0, help="seed of every (corruption, severity, image) draw (default 0)")
    m.add_argument("--limit", type=int, help="only the first N test images")
    m.add_argument("--corruptions", nargs="+", metavar="NAME",
                   help="only these corruptions (default: all 19); added to an existing generated set of the same "
                        "seed and source images")
    m.add_argument("--root", type=Path, help="data root the test images are read from (default: $NARES_DATA_DIR, "
                                             "else ~/.cache/nares/data)")
    m.add_argument("--quiet", action="store_true", help="no progress line")
    m.set_defaults(func=_make_cifar10c)


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


def _make_cifar10c(args: argparse.Namespace) -> int:
    from nares.constants import CORRUPTIONS
    from nares.data.make_cifar10c import make_cifar10c

    shown: list[int] = []

    def progress(name: str, severity: int, done: int, total: int) -> None:
        shown.append(done)
        print(f"\r{done}/{total} cells: {name} severity {severity}" + " " * 10, end="", file=sys.stderr, flush=True)

    try:
        manifest = make_cifar10c(args.out, source=args.source, root=args.root, seed=args.seed, limit=args.limit,
                                 corruptions=args.corruptions or CORRUPTIONS, progress=None if args.quiet else progress)
    finally:
        if shown:
            print(file=sys.stderr)
    src = manifest["source"]
    print(f"cifar10-c (generated): {len(manifest['corruptions'])} corruptions x 5 severities x "
          f"{manifest['per_severity']} images of {src['dataset']} in {manifest['folder']}")
    print(f"set_id {manifest['set_id']}, seed {manifest['seed']}, generator version {manifest['generator_version']}, "
          f"{manifest['seconds']:.1f} s")
    return 0
