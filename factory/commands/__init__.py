"""CLI subcommand modules. Each exposes `register(subparsers)` and sets `func` on its parsers.

Must not import heavy libraries (torch, Prefect, Ray, boto3) at module level: they are imported inside
the command functions, so `nares --help` stays fast.
"""
