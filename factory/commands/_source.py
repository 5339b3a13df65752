"""The dataset-source options shared by the dataset commands: `--release V` or `--data FILE`.

Imports `nares.api` (pyarrow, numpy) only when a dataset is opened, so that `nares --help` stays fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_source_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_mutually_exclusive_group(required=True)
    g.add_argument("--release", metavar="V", help="a release version (fetched from the object store / DVC cache)")
    g.add_argument("--data", metavar="FILE", type=Path,
                   help="a published-layout cifar10.jsonl (the official release or an export), or a release folder")
    parser.add_argument("--strict", action="store_true",
                        help="refuse a jsonl holding values the published layout does not allow (default: read "
                             "what the official NARes class reads, odd values as missing, with a summary on stderr)")


def open_from_args(args: argparse.Namespace):
    from nares.api import open_dataset

    if args.release:
        return open_dataset(release=args.release)
    return open_dataset(args.data, strict=args.strict)
