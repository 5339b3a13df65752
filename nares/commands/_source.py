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


def open_from_args(args: argparse.Namespace):
    from nares.api import open_dataset

    return open_dataset(release=args.release) if args.release else open_dataset(args.data)
