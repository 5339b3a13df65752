"""`nares nas run`: the NAS benchmark (PROTOCOL §6) on a release or a published-layout jsonl.

A dataset that answers only some architectures of its space (a release of a few NB201 classes, a RobNet sample) is
searched over those alone, the budget capped at their number; one line says so (on stderr with `--json`) and the
JSON records it (`searched`: archs of of, restricted, budget_asked)."""

from __future__ import annotations

import argparse
import json
import sys
import time

from factory.commands._source import add_source_args, open_from_args

ALGOS = ("random_search", "local_search", "regularized_evolution", "bananas")  # the published names
ALIASES = ("evolution",)  # = regularized_evolution


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("nas", help="neural architecture search benchmark on the dataset")
    s = p.add_subparsers(dest="nas_command", required=True, metavar="ACTION")
    r = s.add_parser("run", help="seeded searches; prints mean ± std of the best found architecture's metrics")
    r.add_argument("--algo", nargs="+", default=["all"], choices=[*ALGOS, *ALIASES, "all"],
                   help="algorithms (default all; evolution = regularized_evolution)")
    r.add_argument("--variant", default="default", choices=["default", "published"],
                   help="default: the corrected searches (exactly the budget); published: the official NARes "
                        "optimizers' behaviour, which produced the published table (default: default)")
    r.add_argument("--runs", type=int, help="independent runs per algorithm (default: nas.runs of the preset)")
    r.add_argument("--budget", type=int, help="distinct queries per run (default: nas.budget of the preset)")
    r.add_argument("--seed", type=int, default=0, help="run i uses seed SEED+i (default 0)")
    r.add_argument("--workers", type=int, help="parallel processes (default: all cores)")
    r.add_argument("--preset", default="full", help="params.yaml preset with the nas settings (default full)")
    add_source_args(r)
    r.add_argument("--json", action="store_true", help="print the results as one JSON object")
    r.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from nares.config import load_preset
    from nares.errors import NaresError
    from nares.nas.algorithms import canonical
    from nares.nas.runner import (
        format_table,
        optimum_row,
        run_many,
        search_problem,
        settings_for,
        summarize,
    )

    nas_cfg = load_preset(args.preset)["nas"]
    runs, asked = args.runs or nas_cfg["runs"], args.budget or nas_cfg["budget"]
    for option, value in (("--runs", runs), ("--budget", asked)):
        if value < 1:
            raise NaresError(f"{option} {value} must be a positive integer")
    objective = nas_cfg["objective"]
    algos = list(ALGOS) if "all" in args.algo else list(dict.fromkeys(canonical(a) for a in args.algo))
    ds = open_from_args(args)
    problem = search_problem(ds, objective)
    budget = problem.budget(asked)
    if problem.note(asked):
        print(problem.note(asked), file=sys.stderr if args.json else sys.stdout, flush=True)
    rows = []
    for name in algos:
        t0 = time.perf_counter()
        results = run_many(name, problem.values, runs=runs, budget=budget, seed=args.seed, variant=args.variant,
                           settings=settings_for(name, nas_cfg, args.variant), workers=args.workers,
                           space=problem.space)
        rows.append(summarize(ds, results, objective=objective, seconds=time.perf_counter() - t0))
    report = {"objective": objective, "budget": budget, "runs": runs, "seed": args.seed, "variant": args.variant,
              "source": ds.source, "space": problem.space.name, "searched": problem.to_json(asked),
              "rows": rows, "optimum": optimum_row(ds)}
    if args.json:
        print(json.dumps(report))
    else:
        print(format_table(report))
    return 0
