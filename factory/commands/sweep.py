"""`nares sweep run|estimate|status`: run the `nares` flow by hand, project the cost of a sweep, show progress."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="sweeps over the search space (Prefect flow over Ray actors)")
    s = p.add_subparsers(dest="sweep_command", required=True, metavar="ACTION")

    r = s.add_parser("run", help="run the `nares` flow here (on the embedded stack when it is up, else ephemeral)")
    r.add_argument("--action", choices=("sweep", "re-evaluate", "publish"), default="sweep")
    r.add_argument("--preset", default="tiny", help="preset (re-evaluate also takes `all`: every preset and seed "
                   "with runs under $NARES_HOME)")
    r.add_argument("--archs", default="all", help="all | ids:A-B | list:ARCH,... | sample:N[@SEED]")
    r.add_argument("--seed", type=int, action="append", dest="seeds", help="training seed (repeatable)")
    r.add_argument("--mode", choices=("train", "dry-run"), default="train")
    r.add_argument("--version", help="release version (action publish)")
    r.add_argument("--tables", help="tables root (default: $NARES_TABLES/<preset>-seed<seed>, else tables/<preset>-seed<seed>)")
    r.add_argument("--space", help="search space: runs that space's preset (--space nb201 with --preset tiny: "
                   "nb201-tiny); with re-evaluate --preset all, only that space's presets")
    r.add_argument("--dataset", help="data set (registered: nares.datasets); must be the preset's")
    r.add_argument("--suite", help="evaluation suite (eval.suites; default: the preset's eval.suite, else nares): "
                   "sweep evaluates exactly it, re-evaluate computes its missing cells, publish requires it")
    r.set_defaults(func=_run)

    e = s.add_parser("estimate", help="project the device-days of a sweep from measured throughput")
    e.add_argument("--preset", default="full")
    e.add_argument("--archs", default="all", help="architectures to project (default: all 15,625)")
    e.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    e.add_argument("--sample", type=int, help="architectures timed (default: sweep.estimate.sample)")
    e.add_argument("--suite", help="the evaluation suite to cost (default: the preset's; e.g. nares, jung, wsr)")
    e.add_argument("--probe-width-base", type=int, help="time narrower copies (slow devices); MACs enter the fit")
    e.add_argument("--json", action="store_true", help="print the full result as JSON")
    e.add_argument("--out", type=Path, help="also write the JSON result here")
    e.set_defaults(func=_estimate)

    st = s.add_parser("status", help="done / failed / running and device-hours from the sweep journal")
    st.add_argument("--preset", default="tiny")
    st.add_argument("--seed", type=int, default=0)
    st.set_defaults(func=_status)


def _run(args: argparse.Namespace) -> int:
    from factory.stack import use_client_env
    from nares.sweep.paths import ALL_PRESETS, run_sets
    from nares.sweep.request import reevaluate_targets, resolve_request

    # every parameter checked here, one line naming it, before any service starts
    if args.action == "re-evaluate" and args.preset == ALL_PRESETS:   # all: every preset with runs
        reevaluate_targets(run_sets(), seeds=args.seeds, space=args.space, dataset=args.dataset, suite=args.suite,
                           mode=args.mode)
    else:
        resolve_request(args.action, args.preset, space=args.space, dataset=args.dataset, suite=args.suite,
                        archs=args.archs, seeds=args.seeds, mode=args.mode, version=args.version)
    use_client_env()
    from flows.nares_flow import nares

    result = nares(action=args.action, preset=args.preset, archs=args.archs, seeds=args.seeds, mode=args.mode,
                   version=args.version, tables_root=args.tables, space=args.space, dataset=args.dataset,
                   suite=args.suite)
    print(json.dumps(result, indent=2, default=str))
    return 0


def _estimate(args: argparse.Namespace) -> int:
    from nares.config import load_preset
    from nares.evaluations import suite
    from nares.io import atomic_write
    from nares.sweep.estimate import estimate
    from nares.sweep.selection import select_archs
    from nares.train.runtime import resolve_device

    cfg = load_preset(args.preset)
    if args.suite:
        suite(cfg, args.suite)  # an unknown suite: one line before the timing starts
    archs = [a for _, a in select_archs(args.archs)]
    device = str(resolve_device(args.device))  # "cpu", "cuda" or "cuda:N"
    r = estimate(cfg, device=device, width_base=args.probe_width_base, sample=args.sample, archs=archs,
                 suite=args.suite)
    if args.out:
        with atomic_write(args.out, "w") as fh:
            json.dump(r, fh, indent=2)
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    print(f"preset {r['preset']}, suite {r['suite']}, on {r['device']} (probe width_base {r['probe_width_base']}):")
    for row in r["sample"]:
        print(f"  {row['arch']:>18}  {row['macs'] / 1e6:10.1f} MMACs  {row['seconds_per_pass'] * 1e3:9.4f} ms/image-pass")
    f = r["fit"]
    print(f"fit: seconds per image-pass = {f['a_seconds']:.3e} + {f['b_seconds_per_mac']:.3e} x MACs")
    pub = r["published_gpu_days"]
    print(f"{r['n_archs']} architectures: training {r['train_device_days']:,.1f} device-days "
          f"(published {pub['train']:,}), evaluation {r['eval_device_days']:,.1f} (published {pub['eval']:,}), "
          f"total {r['total_device_days']:,.1f}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from nares.sweep.journal import Journal
    from nares.sweep.paths import journal_path

    print(json.dumps(Journal(journal_path(args.preset, args.seed)).summary(), indent=2))
    return 0
