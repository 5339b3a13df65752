"""`nares query ARCH…`: every metric of some architectures (table), or their published records (--json)."""

from __future__ import annotations

import argparse
import json

from factory.commands._source import add_source_args, open_from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("query", help="metrics of architectures (by D1-W1-D2-W2-D3-W3 string or arch_id)")
    p.add_argument("archs", nargs="+", metavar="ARCH", help="e.g. 5-10-5-10-5-10, or an arch_id")
    add_source_args(p)
    p.add_argument("--json", action="store_true", help="print the published records, one JSON object per line")
    p.add_argument("--all", action="store_true", help="a release of another space: also print every entry of the "
                   "confusion and confidence matrices (left out of the table by default)")
    p.set_defaults(func=_query)


def _arch_arg(text: str):
    return int(text) if text.isdigit() else text


def _query(args: argparse.Namespace) -> int:
    from nares.api import Metric

    ds = open_from_args(args)
    keys = [_arch_arg(a) for a in args.archs]
    if not hasattr(ds, "batch_query"):  # a release of another space: every value, through representatives
        return _query_long(ds, keys, args.json, args.all)
    if args.json:
        for rec in ds.batch_query(keys):
            print(json.dumps(rec, separators=(", ", ": ")))
        return 0
    ids = [ds.id_of(k) for k in keys]
    head = ["metric", *(str(ds.arch_of(i)) for i in ids)]
    rows = [["arch_id", *map(str, ids)]]
    for m in Metric:
        unit = {"percent": "%", "millions": "M", "epoch": "", "raw": ""}[m.unit]
        vals = [ds.metric(i, m) for i in ids]
        rows.append([f"{m.value}{f' ({unit})' if unit else ''}",
                     *("—" if v is None else (str(v) if isinstance(v, int) else f"{v:.4f}") for v in vals)])
    widths = [max(len(r[c]) for r in [head, *rows]) for c in range(len(head))]
    for r in [head, *rows]:
        print("  ".join(cell.ljust(w) if c == 0 else cell.rjust(w) for c, (cell, w) in enumerate(zip(r, widths, strict=True))))
    return 0


def _in_order(name: str) -> tuple:
    """Sort key of `evaluation/metric[key]`: by evaluation/metric, then the key's parts, numbers (ε, severity,
    class) by value: `pgd_eps/acc[2]` before `pgd_eps/acc[255]`."""
    head, _, key = name.partition("[")

    def part(p: str) -> tuple:
        try:
            return (0, float(p), "")
        except ValueError:
            return (1, 0.0, p)

    return head, [part(p) for p in key.rstrip("]").split("/")] if key else []


def _query_long(ds, keys: list, as_json: bool, show_all: bool = False) -> int:
    """`nares query` on a long-table release: one column per architecture, one row per evaluation/metric[key]
    (matrix entries only with `show_all`); an architecture answered through its representative says so."""
    from nares.results.schema import MATRIX_METRICS

    answers = [ds.query(k) for k in keys]
    if as_json:
        for a in answers:
            print(json.dumps(a, separators=(", ", ": ")))
        return 0
    for a in answers:  # the column headers are arch ids: each named first
        if a["representative_id"] != a["arch_id"]:
            print(f"{a['arch']} (arch_id {a['arch_id']}) is answered by its representative {a['representative']} "
                  f"(arch_id {a['representative_id']})")
        else:
            print(f"arch_id {a['arch_id']}: {a['arch']}")
    names = sorted({n for a in answers for n in a["values"]}, key=_in_order)
    matrices = [n for n in names if n.split("/", 1)[1].split("[", 1)[0] in MATRIX_METRICS]
    if matrices and not show_all:
        names = [n for n in names if n not in set(matrices)]
    rows = [["metric", *(str(a["arch_id"]) for a in answers)]]
    rows += [[n, *("—" if n not in a["values"] else f"{a['values'][n]:.4f}" for a in answers)] for n in names]
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    for r in rows:
        print("  ".join(cell.ljust(w) if c == 0 else cell.rjust(w) for c, (cell, w) in enumerate(zip(r, widths, strict=True))))
    if matrices and not show_all:
        print(f"({len(matrices)} entries of confusion and confidence matrices ({', '.join(MATRIX_METRICS)}) not shown: "
              "--all or --json shows them)")
    return 0
