"""`nares store`: the embedded S3 server, checkpoints in the object store, tables ⇄ published jsonl, ingest."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("store", help="object store (S3), tables and the embedded S3 server")
    s = p.add_subparsers(dest="store_command", required=True, metavar="ACTION")
    srv = s.add_parser(
        "server", help="the embedded S3 server (data under $NARES_HOME/s3, port $NARES_S3_PORT or 9444)"
    )
    srv.add_argument("action", choices=["start", "stop", "status"])
    srv.set_defaults(func=_server)
    st = s.add_parser("settings", help="where the store is (endpoint, bucket, prefix; secrets masked)")
    st.set_defaults(func=_settings)
    put = s.add_parser(
        "put", help="upload a file content-addressed (sha256), verified; prints key, sha256, size"
    )
    put.add_argument("file", type=Path)
    put.set_defaults(func=_put)
    get = s.add_parser("get", help="download an object by key, verifying its sha256")
    get.add_argument("key")
    get.add_argument("dest", type=Path)
    get.add_argument(
        "--sha256",
        help="expected sha256 (default: the one a content key names, else the one recorded at upload)",
    )
    get.set_defaults(func=_get)
    ing = s.add_parser(
        "ingest", help="upload a finished run's checkpoints and add its rows to the tables (idempotent)"
    )
    ing.add_argument("run_dir", type=Path)
    ing.add_argument("--tables", type=Path, required=True, help="tables folder")
    ing.add_argument("--arch-id", type=int, help="arch id to store it under (default: the record's)")
    ing.set_defaults(func=_ingest)
    imp = s.add_parser("import-jsonl", help="read a published cifar10.jsonl into a tables folder (long rows and the record tables)")
    imp.add_argument("jsonl", type=Path)
    imp.add_argument("--tables", type=Path, required=True)
    imp.set_defaults(func=_import)
    exp = s.add_parser("export-jsonl", help="write the published cifar10.jsonl layout from a tables folder's long results")
    exp.add_argument("--tables", type=Path, required=True)
    exp.add_argument("--out", type=Path, required=True)
    exp.set_defaults(func=_export)
    gc = s.add_parser(
        "clean-staging", help="delete staging objects and multipart uploads left by interrupted uploads"
    )
    gc.add_argument("--older-than", type=float, default=3600.0, help="seconds (default 3600)")
    gc.set_defaults(func=_clean)


def _store():
    from nares.store.objects import ObjectStore

    return ObjectStore.from_settings()


def _server(args: argparse.Namespace) -> int:
    from factory import local_s3

    if args.action == "start":
        print(json.dumps(local_s3.start()))
    elif args.action == "stop":
        print("stopped" if local_s3.stop() else "not running")
    else:
        status = local_s3.status()
        print(json.dumps(status))
        return 0 if status["running"] else 1
    return 0


def _settings(args: argparse.Namespace) -> int:
    from nares.store.settings import StoreSettings

    print(StoreSettings.from_env())
    return 0


def _put(args: argparse.Namespace) -> int:
    key, sha, size = _store().put_file(args.file)
    print(f"{key}\t{sha}\t{size}")
    return 0


def _get(args: argparse.Namespace) -> int:
    print(_store().get_file(args.key, args.dest, args.sha256))
    return 0


def _ingest(args: argparse.Namespace) -> int:
    from nares.store.ingest import ingest_run

    ingest_run(_store(), args.tables, args.run_dir, arch_id=args.arch_id)
    print(f"ingested {args.run_dir} into {args.tables}")
    return 0


def _import(args: argparse.Namespace) -> int:
    from nares.store.tables import import_jsonl

    n = import_jsonl(args.jsonl, args.tables)
    print(f"imported {n} records into {args.tables}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from nares.exporters.nares_jsonl import write_results_jsonl

    n = write_results_jsonl(args.tables, args.out)
    print(f"wrote {n} records to {args.out}")
    return 0


def _clean(args: argparse.Namespace) -> int:
    from factory import local_s3
    from nares.store.objects import StoreError

    done = local_s3.clean_staging(_store(), args.older_than)
    parts = f" ({done.upload_bytes / 1e6:.1f} MB of parts)" if done.upload_bytes else ""
    uploads = "not checked" if done.uploads_unchecked else f"aborted {done.uploads}{parts}"
    print(f"deleted {done.objects} staging objects; multipart uploads: {uploads}")
    if done.uploads_unchecked:
        raise StoreError(f"{done.uploads_unchecked}: orphaned multipart parts may remain on that server")
    return 0
