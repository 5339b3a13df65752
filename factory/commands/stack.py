"""`nares stack up|down|status`: the embedded stack (local S3, Prefect server, Ray head, deployment worker)."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stack", help="the embedded stack: local S3, Prefect server + worker, Ray head")
    s = p.add_subparsers(dest="stack_command", required=True, metavar="ACTION")
    u = s.add_parser("up", help="start every service (idempotent) and register the deployments")
    u.add_argument("--num-cpus", type=int, help="CPUs the Ray head offers (default: all)")
    u.set_defaults(func=_up)
    s.add_parser("down", help="stop every service (worker, Prefect, Ray, S3); data stays").set_defaults(func=_down)
    s.add_parser("status", help="which services run, and where").set_defaults(func=_status)


def _up(args: argparse.Namespace) -> int:
    from factory.stack import up

    st = up(num_cpus=args.num_cpus)
    print(json.dumps(st, indent=2, default=str))
    print(f"Prefect UI: {st['ui']}   (shell settings: source {st['env_file']})")
    return 0


def _down(args: argparse.Namespace) -> int:
    from factory.stack import down

    for name, was in down().items():
        print(f"{name}: {'stopped' if was else 'not running'}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from factory.stack import status

    print(json.dumps(status(), indent=2, default=str))
    return 0
