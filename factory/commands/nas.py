"""`nares nas run`: the NAS benchmark (PROTOCOL §6) on a release or a published-layout jsonl."""

from __future__ import annotations

import argparse
import json
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
    from nares.nas.algorithms import canonical
    from nares.nas.runner import (
        format_table,
        objective_by_code,
        optimum_row,
        run_many,
        settings_for,
        summarize,
    )

    nas_cfg = load_preset(args.preset)["nas"]
    runs, budget = args.runs or nas_cfg["runs"], args.budget or nas_cfg["budget"]
    objective = nas_cfg["objective"]
    algos = list(ALGOS) if "all" in args.algo else list(dict.fromkeys(canonical(a) for a in args.algo))
    ds = open_from_args(args)
    values = objective_by_code(ds, objective)
    rows = []
    for name in algos:
        t0 = time.perf_counter()
        results = run_many(name, values, runs=runs, budget=budget, seed=args.seed, variant=args.variant,
                           settings=settings_for(name, nas_cfg, args.variant), workers=args.workers)
        rows.append(summarize(ds, results, objective=objective, seconds=time.perf_counter() - t0))
    report = {"objective": objective, "budget": budget, "runs": runs, "seed": args.seed, "variant": args.variant,
              "source": ds.source,
              "rows": rows, "optimum": optimum_row(ds)}
    if args.json:
        print(json.dumps(report))
    else:
        print(format_table(report))
    return 0
