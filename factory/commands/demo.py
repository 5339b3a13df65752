"""`nares demo`: the main job on the embedded stack, end to end.

Brings the stack up (local S3, Prefect server, Ray head, deployment worker), runs the deployment
`nares/full-sweep` with the `tiny` preset on a few small architectures (Prefect → Ray actors → trainer,
evaluator, store), runs `nares/publish` (validation + release), prints a query of the release, and leaves
the stack running for inspection (`nares stack down` stops it; the data stays under `$NARES_HOME`). Its nightly
`nares/re-evaluate` covers the runs under `$NARES_HOME`, so it keeps the demo's cells current. With `--down`
the stack is stopped at the end, also when a step (or the start-up itself) fails.

`--space nb201|robnet` runs the same on that space's tiny preset (`SPACE_ARCHS`: three NB201 cells of two
isomorphism classes, so two representatives train; a seeded sample of two RobNets), ending in a validated release of
the long results table, which it queries (`nares query`) and searches (`nares nas run`). `--suite S` evaluates
suite S (default: the preset's `eval.suite`, else `nares`); the release gate then requires S. An NB201 release
holding Jung et al.'s evaluations (`--space nb201 --suite jung`) is also exported in their layout, imported back
into a folder the query API answers from, and exported again: the two exports must be the same files. A suite that
reads CIFAR-10-C (`jung`'s `corruptions_cm`) where no set is present first generates one here
(`nares.data.make_cifar10c`, the preset's `data.corruption_limit` test images).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

DEMO_ARCHS = "ids:1-3"  # the three smallest architectures (arch ids ascend in MACs)
# Per space: NB201 — a cell whose conv feeds nothing (≅ SKIP), SKIP, and a ResNet-like cell (trained as another
# member of its class): 3 cells, 2 classes, 2 runs; RobNet — two architectures of a seeded draw.
SPACE_ARCHS = {
    "nb201": "list:|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|,"
             "|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|,"
             "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|",
    "robnet": "sample:2@5",
}
NAS_RUNS = 5  # seeded runs per algorithm of the demo's NAS benchmark
JUNG_SPACE = "nb201"  # a release of it holding Jung et al.'s evaluations also goes through their layout and back
JUNG_EVALUATIONS = ("confusion", "fgsm_eps", "pgd_eps", "apgd_eps", "square_eps", "corruptions_cm")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the main job: tiny sweep through Prefect + Ray, validated release, a query")
    p.add_argument("--preset", default="tiny")
    p.add_argument("--archs", help=f"architecture selection (default {DEMO_ARCHS}; with --space, that space's "
                   "demo selection)")
    p.add_argument("--space", help="run the demo on this search space's preset (nb201 or robnet): release of the long "
                   "results table, `nares query` and `nares nas run` on it")
    p.add_argument("--suite", help="evaluation suite (default: the preset's eval.suite, else nares)")
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


def _cli(what: str, argv: list[str]) -> int:
    """Run `nares ARGV…` in a child process (its output goes straight to ours), announced by one line."""
    print(f"demo: nares {' '.join(argv)}", flush=True)
    q = subprocess.run([sys.executable, "-m", "factory.cli", *argv], check=False)
    if q.returncode != 0:
        print(f"demo: the {what} exited with status {q.returncode}", file=sys.stderr)
    return q.returncode


def _plan(args: argparse.Namespace, version: str) -> tuple[dict, dict, list[list[str]]]:
    """The sweep's and the release's deployment parameters and the commands run on the release, all checked
    before anything starts. Without --space and --suite: exactly the WRN demo's."""
    from nares.sweep.request import resolve_request
    from nares.sweep.selection import select_archs

    if args.space is None and args.suite is None:
        archs = select_archs(args.archs or DEMO_ARCHS)
        selection = args.archs or DEMO_ARCHS
        return ({"preset": args.preset, "archs": selection, "mode": "train"},
                {"preset": args.preset, "archs": selection, "version": version},
                [["query", str(archs[0][1]), "--release", version]])
    selection = args.archs or SPACE_ARCHS.get(args.space or "wrn", DEMO_ARCHS)
    extra = {k: v for k, v in (("space", args.space), ("suite", args.suite)) if v is not None}
    req = resolve_request("sweep", args.preset, archs=selection, **extra)
    resolve_request("publish", args.preset, archs=selection, version=version, **extra)
    from nares.config import load_preset
    from nares.spaces import space_for

    space = space_for(load_preset(req.preset))
    first = space.format(space.parse(selection.removeprefix("list:").split(",")[0])) \
        if selection.startswith("list:") else space.format(select_archs(selection, space)[0][1])
    commands = [["query", first, "--release", version]]
    if req.space != "wrn":
        commands.append(["nas", "run", "--release", version, "--preset", req.preset, "--runs", str(NAS_RUNS)])
    if req.space == JUNG_SPACE and set(req.evaluations) & set(JUNG_EVALUATIONS):
        commands += _jung_round_trip(version)
    return ({"preset": args.preset, "archs": selection, "mode": "train", **extra},
            {"preset": args.preset, "archs": selection, "version": version, **extra}, commands)


def _jung_round_trip(version: str) -> list[list[str]]:
    """The release exported in Jung et al.'s layout, that file set imported into a folder the query API opens, the
    folder exported again and compared with the first export (`nares export jung` / `nares import jung`)."""
    from nares.store.settings import nares_home

    base = nares_home() / "exports" / version
    first, imported, again = base / "jung", base / "jung-imported", base / "jung-again"
    return [["export", "jung", "--release", version, "--out", str(first)],
            ["import", "jung", str(first), "--out", str(imported)],
            ["query", SPACE_ARCHS[JUNG_SPACE].removeprefix("list:").split(",")[0], "--data", str(imported)],
            ["export", "jung", "--tables", str(imported / "tables"), "--out", str(again)],
            ["same-files", str(first), str(again)]]


def _same_files(a: str, b: str) -> int:
    """0 when folders `a` and `b` hold the same files byte for byte (one line saying so), else 1."""
    from pathlib import Path

    files = {p.relative_to(a): p.read_bytes() for p in sorted(Path(a).rglob("*")) if p.is_file()}
    other = {p.relative_to(b): p.read_bytes() for p in sorted(Path(b).rglob("*")) if p.is_file()}
    same = files == other
    print(f"demo: the re-imported release exports {'the same' if same else 'OTHER'} {len(files)} files "
          f"({sum(map(len, files.values()))} bytes) as the release", flush=True)
    return 0 if same else 1


def _corruption_set(sweep: dict) -> None:
    """When the sweep's suite reads CIFAR-10-C and no set is present, generate one here for the preset's
    `data.corruption_limit` test images (`nares data make-cifar10c`), so those evaluations run instead of being
    skipped; the release card then names the generated set."""
    from nares.data.corruptions import corruption_set_info
    from nares.evaluations import get_evaluation
    from nares.sweep.request import resolve_request

    req = resolve_request("sweep", sweep["preset"], **{k: sweep[k] for k in ("space", "suite", "archs") if k in sweep})
    if not any(get_evaluation(e).needs_corruptions for e in req.evaluations):
        return
    if corruption_set_info()["source"] != "absent":
        return
    from nares.config import load_preset
    from nares.data.make_cifar10c import make_cifar10c

    limit = load_preset(req.preset)["data"]["corruption_limit"]
    print(f"demo: suite {req.suite} reads CIFAR-10-C, which is absent: generating it here for the first {limit} "
          "test images (nares data make-cifar10c)", flush=True)
    made = make_cifar10c(limit=limit)
    print(f"demo: CIFAR-10-C set {made['set_id']} in {made['folder']} ({made['seconds']:.0f} s)", flush=True)


def _demo(args: argparse.Namespace) -> int:
    from factory.stack import down, up

    version = args.version or time.strftime("demo-%Y%m%d-%H%M%S")
    sweep, release, commands = _plan(args, version)
    if args.space is not None or args.suite is not None:  # the default demo stays exactly the WRN demo
        _corruption_set(sweep)
    print("demo: starting the embedded stack (S3, Prefect server, Ray head, worker)", flush=True)
    try:
        st = up()
        print(f"demo: Prefect UI at {st['ui']}", flush=True)
        _run_deployment("nares/full-sweep", sweep)
        _run_deployment("nares/publish", release)
        for argv in commands:
            what = {"query": "query", "nas": "NAS benchmark", "export": "export", "import": "import"}.get(argv[0])
            rc = _same_files(*argv[1:]) if argv[0] == "same-files" else _cli(what or argv[0], argv)
            if rc != 0:
                return rc
    finally:
        if args.down:
            down()
    from nares.release import releases_root

    where = "the local S3 and DVC" if (releases_root() / f"{version}.dvc").is_file() else "the local S3"
    if args.down:
        print(f"demo: done. Release {version} is in {where}; the stack is stopped (its data stays "
              f"under {st['env_file'].rsplit('/', 1)[0]})", flush=True)
    else:
        print(f"demo: done. Release {version} is in {where}. The stack is still up:\n"
              f"  Prefect UI   {st['ui']}\n"
              f"  shell        source {st['env_file']}   (then e.g. prefect deployment run nares/full-sweep ...)\n"
              f"  re-evaluate  nares/re-evaluate runs nightly (03:00 UTC) on the runs under $NARES_HOME\n"
              f"  tear down    .venv/bin/nares stack down   (after sourcing stack.env when NARES_HOME or a port "
              f"was set)", flush=True)
    return 0
