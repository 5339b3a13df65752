"""`nares release`: validate, publish, list and fetch dataset releases."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--tables", type=Path, required=True, help="tables folder (e.g. tables/tiny-seed0, the sweep's default)"
    )
    p.add_argument("--preset", help="preset of params.yaml the tables were made with (default: inferred from the "
                   "record tables of a WRN sweep; required for another space)")
    p.add_argument("--suite", help="the evaluation suite the tables were swept with: a release of another space "
                   "requires its evaluations of every architecture (default: the preset's eval.suite, else nares)")
    p.add_argument(
        "--expected", help="the sweep's architecture list: ids A-B, or a file with one arch id per line"
    )
    p.add_argument(
        "--verify-checkpoints",
        choices=["full", "head", "none"],
        default="full",
        help="full: read every checkpoint back and check its sha256 (default); head: recorded sha256/size",
    )
    p.add_argument(
        "--tolerance", type=float, help="allowed violation of accuracy orderings (fraction, default 0.01)"
    )
    p.add_argument(
        "--id-map", type=Path, help="an existing release's cifar10.jsonl whose arch ids the tables keep "
        "(default: ascending MACs)"
    )


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("release", help="validated, immutable dataset releases")
    s = p.add_subparsers(dest="release_command", required=True, metavar="ACTION")
    pub = s.add_parser("publish", help="validate the tables and publish them as a new version")
    pub.add_argument("--version", required=True, help="release version, e.g. v1.0 (never overwritten)")
    _common(pub)
    pub.add_argument("--no-dvc", action="store_true", help="do not `dvc add` / `dvc push` the release folder")
    pub.set_defaults(func=_publish)
    val = s.add_parser("validate", help="run the release checks only; writes the HTML report")
    _common(val)
    val.add_argument("--report", type=Path, help="folder for the HTML report (readable offline)")
    val.set_defaults(func=_validate)
    ls = s.add_parser("list", help="every version with its validation result and checksums")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=_list)
    fe = s.add_parser("fetch", help="download a release (checksums verified); prints its folder")
    fe.add_argument("version")
    fe.add_argument("--dest", type=Path)
    fe.set_defaults(func=_fetch)


def _expected(spec: str | None) -> list[int] | None:
    from nares.errors import NaresError, shown

    if spec is None:
        return None
    if "-" in spec and not Path(spec).exists():
        a, _, b = spec.partition("-")
        if a.isdigit() and b.isdigit():
            return list(range(int(a), int(b) + 1))
    path = Path(spec)
    if not path.is_file():
        raise NaresError(f"--expected {shown(spec)} is neither A-B nor a file of arch ids")
    try:
        return [int(line) for line in path.read_text().split()]
    except ValueError:
        raise NaresError(f"--expected file {path} must hold one integer arch id per line") from None


def _store(args: argparse.Namespace):
    if args.verify_checkpoints == "none":
        return None
    from nares.store.objects import ObjectStore

    return ObjectStore.from_settings()


def _publish(args: argparse.Namespace) -> int:
    from nares.config import REPO_ROOT
    from nares.release import publish

    # A refusal (ReleaseRefused) is a NaresError: one line on stderr naming the failing expectations and
    # where the report was kept, exit status 2.
    info = publish(
        args.version,
        tables_root=args.tables,
        expected_archs=_expected(args.expected),
        preset=args.preset,
        verify_checkpoints=args.verify_checkpoints,
        tolerance=args.tolerance,
        id_map=args.id_map,
        dvc_repo=None if args.no_dvc else REPO_ROOT,
        suite=args.suite,
    )
    print(
        f"published {info['version']}: {info['n_archs']} architectures, {info['files']} files, {info['store']}"
    )
    print(f"local copy: {info['path']}")
    if "dvc_file" in info:
        print(f"recorded in DVC: {info['dvc_file']} (pushed)")
    if "dvc_error" in info:
        print(f"warning: {info['dvc_error']}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from nares.release import release_preset, validate_release
    from nares.store.tables import read_tables

    tables = read_tables(args.tables)
    _, cfg = release_preset(tables, args.preset)
    r = validate_release(
        tables,
        cfg,
        store=_store(args),
        expected_archs=_expected(args.expected),
        verify_checkpoints=args.verify_checkpoints,
        tolerance=args.tolerance,
        id_map=args.id_map,
        report_dir=args.report,
        tables_root=args.tables,
        suite=args.suite,
    )
    print(
        f"{'passed' if r.success else 'FAILED'}: {r.n_expectations} expectations over {r.n_archs} architectures"
        + (f"; report {r.report_dir}/index.html" if r.report_dir else "")
    )
    for f in r.failures:
        print(f"  - {f}")
    return 0 if r.success else 1


def _list(args: argparse.Namespace) -> int:
    from nares.release import list_releases

    rows = list_releases()
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    if not rows:
        print("no releases")
    for r in rows:
        print(
            f"{r['version']:<24} {r['created_at']}  {r['n_archs']:>6} archs  validation {r['validation']:<6}  "
            f"SHA256SUMS {r['sha256sums_sha256'][:16]}…  [{', '.join(r['where'])}]"
        )
    return 0


def _fetch(args: argparse.Namespace) -> int:
    from nares.release import fetch_release

    print(fetch_release(args.version, args.dest))
    return 0
