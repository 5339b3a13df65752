"""The `nares` command line. Each module in `factory.commands` adds its subcommands via `register(subparsers)`.

Errors of type `NaresError` print as one line `nares: error: …` and exit with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import factory.commands
from nares import __version__
from nares.errors import NaresError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nares", description="The NARes factory: a neural architecture dataset for adversarial robustness.")
    parser.add_argument("--version", action="version", version=f"nares {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(factory.commands.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"factory.commands.{info.name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except NaresError as e:
        print(f"nares: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nares: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
