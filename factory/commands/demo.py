"""`nares demo`: the main job on the embedded stack, end to end.

Brings the stack up (local S3, Prefect server, Ray head, deployment worker), runs the deployment
`nares/full-sweep` with the `tiny` preset on a few small architectures (Prefect → Ray actors → trainer,
evaluator, store), runs `nares/publish` (validation + release), prints a query of the release, and leaves
the stack running for inspection (`nares stack down` stops it; the data stays under `$NARES_HOME`). Its nightly
`nares/re-evaluate` covers the runs under `$NARES_HOME`, so it keeps the demo's cells current. With `--down`
the stack is stopped at the end, also when a step (or the start-up itself) fails.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

DEMO_ARCHS = "ids:1-3"  # the three smallest architectures (arch ids ascend in MACs)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the main job: tiny sweep through Prefect + Ray, validated release, a query")
    p.add_argument("--preset", default="tiny")
    p.add_argument("--archs", default=DEMO_ARCHS, help=f"architecture selection (default {DEMO_ARCHS})")
    p.add_argument("--version", help="release version (default: demo-<date>-<time>)")
    p.add_argument("--down", action="store_true", help="stop the stack at the end instead of leaving it up")
    p.set_defaults(func=_demo)


def _run_deployment(name: str, parameters: dict) -> None:
    from prefect.deployments import run_deployment

    from factory.stack import StackError

    print(f"demo: running deployment {name} {parameters}", flush=True)
    t0 = time.monotonic()
    run = run_deployment(name, parameters=parameters, timeout=None, poll_interval=3)
    state = run.state
    if state is None or not state.is_completed():
        raise StackError(f"deployment {name} ended {state.name if state else 'without a state'}; "
                         f"see the flow run {run.name!r} in the Prefect UI")
    print(f"demo: {name} completed in {time.monotonic() - t0:.0f} s (flow run {run.name!r})", flush=True)


def _demo(args: argparse.Namespace) -> int:
    from factory.stack import down, up
    from nares.sweep.selection import select_archs

    archs = select_archs(args.archs)
    version = args.version or time.strftime("demo-%Y%m%d-%H%M%S")
    print("demo: starting the embedded stack (S3, Prefect server, Ray head, worker)", flush=True)
    try:
        st = up()
        print(f"demo: Prefect UI at {st['ui']}", flush=True)
        _run_deployment("nares/full-sweep", {"preset": args.preset, "archs": args.archs, "mode": "train"})
        _run_deployment("nares/publish", {"preset": args.preset, "archs": args.archs, "version": version})
        first = str(archs[0][1])
        print(f"demo: nares query {first} --release {version}", flush=True)
        q = subprocess.run([sys.executable, "-m", "factory.cli", "query", first, "--release", version], check=False)
        if q.returncode != 0:
            print(f"demo: the query exited with status {q.returncode}", file=sys.stderr)
            return q.returncode
    finally:
        if args.down:
            down()
    if args.down:
        print(f"demo: done. Release {version} is in the local S3 and DVC; the stack is stopped (its data stays "
              f"under {st['env_file'].rsplit('/', 1)[0]})", flush=True)
    else:
        print(f"demo: done. Release {version} is in the local S3 and DVC. The stack is still up:\n"
              f"  Prefect UI   {st['ui']}\n"
              f"  shell        source {st['env_file']}   (then e.g. prefect deployment run nares/full-sweep ...)\n"
              f"  re-evaluate  nares/re-evaluate runs nightly (03:00 UTC) on the runs under $NARES_HOME\n"
              f"  tear down    .venv/bin/nares stack down   (after sourcing stack.env when NARES_HOME or a port "
              f"was set)", flush=True)
    return 0
