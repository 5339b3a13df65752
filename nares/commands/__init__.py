"""CLI subcommand modules. Each exposes `register(subparsers)` and sets `func` on its parsers.

Keep imports of heavy libraries inside the command functions so `nares --help` stays fast.
"""
