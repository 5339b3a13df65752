"""`nares top --metric M -k K`: the best architectures by one metric, with params/MACs filters."""

from __future__ import annotations

import argparse
import json

from factory.commands._source import add_source_args, open_from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("top", help="the k best architectures by a metric (filters on params, MACs, coordinates)")
    p.add_argument("--metric", required=True, help="a Metric name, e.g. TEST_AA_ACC, VAL_PGD_ACC, TEST_PGD_LIP")
    p.add_argument("-k", type=int, default=10, help="how many (default 10)")
    for bound in ("min", "max"):
        p.add_argument(f"--{bound}-params", type=float, help=f"{bound}imum parameter count (raw, e.g. 5e7)")
        p.add_argument(f"--{bound}-macs", type=float, help=f"{bound}imum MACs (raw, e.g. 10e9)")
    p.add_argument("--where", action="append", default=[], metavar="COORD=V[,V]",
                   help="keep architectures whose coordinate (d1..w3) takes one of the values, e.g. d1=4,5")
    p.add_argument("--worst", action="store_true", help="list the worst first")
    add_source_args(p)
    p.add_argument("--json", action="store_true", help="print JSON lines {rank, arch_id, arch, metric, value, params, macs}")
    p.set_defaults(func=_top)


def _coords(items: list[str]) -> dict[str, list[int]]:
    from nares.errors import ArchError, shown

    out = {}
    for item in items:
        name, _, vals = item.partition("=")
        try:
            out[name.strip().lower()] = [int(v) for v in vals.split(",")]
        except ValueError:
            raise ArchError(f"--where {shown(item)} is not COORD=V[,V] with integer values (e.g. d1=4,5)") from None
    return out


def _filters(args: argparse.Namespace) -> dict:
    """The filter arguments, checked before the dataset is opened (one line naming the bad option)."""
    from nares.api.dataset import check_filters
    from nares.errors import DataError, shown

    if args.k < 1:
        raise DataError(f"-k {shown(args.k)} is not allowed: give a positive number of architectures")
    bounds = {f"{b}_{q}": getattr(args, f"{b}_{q}") for b in ("min", "max") for q in ("params", "macs")}
    coords = _coords(args.where)
    check_filters(bounds, coords, label=lambda key: f"--{key.replace('_', '-')}" if key in bounds else f"--where {key}")
    return {**bounds, **coords}


def _top(args: argparse.Namespace) -> int:
    from nares.api import Metric

    m = Metric.parse(args.metric)
    filters = _filters(args)
    ds = open_from_args(args)
    rows = ds.top(m, args.k, best_first=not args.worst, **filters)
    out = []
    for rank, (arch, value) in enumerate(rows, 1):
        aid = ds.id_of(arch)
        out.append({"rank": rank, "arch_id": aid, "arch": str(arch), "metric": m.value, "value": value,
                    "params_m": ds.metric(aid, Metric.PARAMS), "macs_m": ds.metric(aid, Metric.MACS)})
    if args.json:
        for r in out:
            print(json.dumps(r))
        return 0
    print(f"{'rank':>4}  {'arch_id':>7}  {'arch':<17}  {m.value:>16}  {'params (M)':>10}  {'MACs (M)':>10}")
    for r in out:
        print(f"{r['rank']:>4}  {r['arch_id']:>7}  {r['arch']:<17}  {r['value']:>16.4f}  {r['params_m']:>10.3f}  {r['macs_m']:>10.1f}")
    if not out:
        print("no architecture passes the filters")
    return 0
