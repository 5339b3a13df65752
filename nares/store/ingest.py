"""Ingest one finished run folder into the object store and the tables (idempotent).

A run folder (written by `nares train` / `nares evaluate`) holds `train_done.json` (the completion
marker: history, checkpoint sha256s and epochs, training cost), `checkpoints/<kind>.pt` for the four
kinds and `evaluations.jsonl` (one JSON object per evaluated cell). Ingest uploads the checkpoints
content-addressed and verified, then upserts the long-format results (`nares.results`, the source of truth),
the WRN record tables (a view of those rows: the published record exported from them by
`nares.exporters.nares_jsonl`), the ledger and, last, the manifest, so that `is_complete` is true only once all
of an architecture is stored.

Each checkpoint is also placed, server-side (S3 CopyObject, no second upload), where DVC's remote expects it
(`<prefix>/dvc/files/md5/<ab>/<rest>`), and its md5 is recorded on the content object: a release then lists
its checkpoints in DVC without moving a byte (`nares.release.record_in_dvc`).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from nares.constants import CHECKPOINT_KINDS
from nares.errors import NaresError
from nares.exporters.nares_jsonl import TEST_PAIRS, long_to_records
from nares.results.run import run_rows
from nares.results.store import write_results
from nares.spaces import DEFAULT_SPACE
from nares.store.objects import ObjectStore
from nares.store.tables import SCHEMAS, SHARD_ARCHS, records_to_tables, shard_path, write_tables

DONE_FILE = "train_done.json"
EVAL_FILE = "evaluations.jsonl"
TRAIN_METRIC = "train"  # the ledger row holding the training cost of a run


class IngestError(NaresError):
    """A run folder that cannot be ingested (incomplete, inconsistent or corrupt)."""


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise IngestError(f"{path} is missing: the run is not finished") from None
    except json.JSONDecodeError as e:
        raise IngestError(f"{path} is not JSON ({e.msg})") from None


def digests(path: Path, chunk: int = 1 << 20) -> tuple[str, str]:
    """(sha256, md5) of a file, read once."""
    sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            sha.update(block)
            md5.update(block)
    return sha.hexdigest(), md5.hexdigest()


def dvc_key(store: ObjectStore, md5: str) -> str:
    """Where DVC 3's remote (`<prefix>/dvc`, the `store` remote of .dvc/config) keeps a file of this md5."""
    return store.settings.key("dvc", "files", "md5", md5[:2], md5[2:])


def store_checkpoint(store: ObjectStore, path: Path) -> tuple[str, str, int, str]:
    """Upload a checkpoint content-addressed (verified), record its md5 on the object and copy it server-side
    to its DVC remote key; returns (key, sha256, size, md5). Idempotent: what is in place is not copied again."""
    from nares.store.objects import MD5_META

    sha, md5 = digests(path)
    key, sha, size = store.put_file(path, sha256=sha)
    if store.head(key).get("md5") != md5:
        store.copy(key, key, {MD5_META: md5})  # metadata only: the object is rewritten by the server
    target = store.head(dvc_key(store, md5))
    if target is None or target["size"] != size or target["sha256"] != sha:
        store.copy(key, dvc_key(store, md5), {MD5_META: md5})
    return key, sha, size, md5


def device_seconds(entry: dict[str, Any]) -> float | None:
    """The device-seconds of a cell or training phase (`nares.evaluate.ledger`); in one written before that
    convention (`gpu_seconds`, 0 off CUDA, beside `wall_seconds`), its wall seconds: the same time."""
    value = entry.get("device_seconds", entry.get("wall_seconds"))
    return None if value is None else float(value)


def _ledger_rows(run_dir: Path, aid: int, done: dict[str, Any]) -> list[dict[str, Any]]:
    """One ledger row for the training phase and one per evaluation cell, each with its device and
    device-seconds."""
    train_phase = done.get("phases", {}).get("train", {})
    rows = [
        {
            "arch_id": aid,
            "checkpoint": "all",
            "metric": TRAIN_METRIC,
            "metric_version": 1,
            "status": "done",
            "device": train_phase.get("device") or done.get("device") or done.get("gpu_type"),
            "device_seconds": device_seconds(train_phase),
            "started_at": done.get("started_at") or done.get("timestamp"),
            "finished_at": done.get("finished_at") or done.get("timestamp"),
            "code_version": done.get("code_version"),
            "preset_hash": done.get("preset_hash"),
        }
    ]
    path = run_dir / EVAL_FILE
    if path.exists():
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                cell = json.loads(line)
            except json.JSONDecodeError:
                raise IngestError(f"{path} line {n} is not JSON") from None
            rows.append(
                {
                    "arch_id": aid,
                    "checkpoint": cell.get("checkpoint"),
                    "metric": cell.get("metric"),
                    "metric_version": cell.get("metric_version"),
                    "status": cell.get("status", "done"),
                    "device": cell.get("device"),
                    "device_seconds": device_seconds(cell),
                    "started_at": cell.get("started_at"),
                    "finished_at": cell.get("finished_at"),
                    "code_version": cell.get("code_version"),
                    "preset_hash": cell.get("preset_hash"),
                }
            )
    return rows


def ingest_run(
    store: ObjectStore, tables_root: str | Path, run_dir: str | Path, *, arch_id: int | None = None
) -> None:
    """Upload the run's four checkpoints, then upsert its record, ledger and manifest rows.

    `arch_id` (default: the record's) is the id the tables use for this architecture. Running it again
    on the same folder stores nothing new.
    """
    run_dir = Path(run_dir)
    done = _read_json(run_dir / DONE_FILE)
    if done.get("space", DEFAULT_SPACE) != DEFAULT_SPACE:  # another space: no published-layout record
        if arch_id is None:
            raise IngestError(f"{run_dir}: a run of space {done.get('space')!r} is ingested under an explicit arch_id")
        if not (run_dir / EVAL_FILE).exists():
            raise IngestError(f"{run_dir / EVAL_FILE} is missing; run `nares evaluate` first")
        tables: dict[str, pa.Table] = {}
        aid = int(arch_id)
        rows = run_rows(run_dir, arch_id=aid)
    else:  # the wide record tables are a view of the long rows: the published record exported from them
        rows = run_rows(run_dir, arch_id=arch_id)
        recs = long_to_records(rows)
        if len(recs) != 1:
            raise IngestError(f"{run_dir / EVAL_FILE} lacks a cell of the published record (needs "
                              f"{', '.join(dict.fromkeys(e for e, _ in TEST_PAIRS.values()))} and complexity of the best "
                              "checkpoint); run `nares evaluate` first")
        tables = records_to_tables(recs)  # validates the record: fails before any upload
        aid = recs[0]["arch_id"]
    entries = done.get("checkpoints", {})
    manifest = []
    for kind in CHECKPOINT_KINDS:
        entry = entries.get(kind)
        if entry is None:
            raise IngestError(f"{run_dir / DONE_FILE} lists no {kind!r} checkpoint")
        path = run_dir / entry.get("file", f"checkpoints/{kind}.pt")
        if not path.is_file():
            raise IngestError(f"checkpoint {path} is missing")
        key, sha, size, _ = store_checkpoint(store, path)
        if sha != entry["sha256"]:
            raise IngestError(
                f"checkpoint {path} has sha256 {sha[:12]}…, but {DONE_FILE} records {entry['sha256'][:12]}…"
            )
        manifest.append(
            {"arch_id": aid, "kind": kind, "key": key, "sha256": sha, "size": size, "epoch": entry["epoch"]}
        )
    tables["ledger"] = pa.Table.from_pylist(_ledger_rows(run_dir, aid, done), schema=SCHEMAS["ledger"])
    tables["manifest"] = pa.Table.from_pylist(manifest, schema=SCHEMAS["manifest"])
    write_results(rows, tables_root)  # the long rows first: the manifest comes last
    write_tables(tables, tables_root)


def _shard_rows(tables_root: Path, name: str, arch_id: int, columns: list[str]) -> pa.Table:
    path = shard_path(tables_root, name, (arch_id - 1) // SHARD_ARCHS)
    if not path.exists():
        return SCHEMAS[name].empty_table().select(columns)
    return pq.read_table(path, columns=columns, filters=[("arch_id", "=", arch_id)])


def is_complete(tables_root: str | Path, arch_id: int, space: str = DEFAULT_SPACE) -> bool:
    """True when the tables hold all four manifest rows of the architecture and its results: the WRN record
    (runs and test_metrics rows), or for another space its rows in the long results table."""
    root = Path(tables_root)
    kinds = set(_shard_rows(root, "manifest", int(arch_id), ["arch_id", "kind"]).column("kind").to_pylist())
    if kinds != set(CHECKPOINT_KINDS):
        return False
    if space != DEFAULT_SPACE:
        return int(arch_id) in _result_ids(root, space, int(arch_id))
    return all(
        _shard_rows(root, n, int(arch_id), ["arch_id"]).num_rows == 1 for n in ("runs", "test_metrics")
    )


def _result_ids(root: Path, space: str, arch_id: int | None = None) -> set[int]:
    """The arch ids of `space` with rows in the long results table (of `arch_id`'s shard alone when given)."""
    from nares.results.store import RESULTS_TABLE
    from nares.results.store import shard_path as results_shard

    paths = [results_shard(root, (arch_id - 1) // SHARD_ARCHS)] if arch_id is not None else \
        sorted((root / RESULTS_TABLE).glob("part-*.parquet"))
    ids: set[int] = set()
    for path in paths:
        if path.exists():
            t = pq.read_table(path, columns=["space", "arch_id"], filters=[("space", "=", space)])
            ids.update(t.column("arch_id").to_pylist())
    return ids


def _stored_rows(root: Path, name: str, columns: list[str]) -> list[tuple]:
    """`columns` of every row of table `name` that lies in its architecture's shard (where `is_complete` looks)."""
    rows: list[tuple] = []
    for path in sorted((root / name).glob("part-*.parquet")):
        digits = path.stem.removeprefix("part-")
        if not digits.isdigit() or path != shard_path(root, name, int(digits)):
            continue  # a file `is_complete` never reads
        shard = int(digits)
        t = pq.read_table(path, columns=columns)
        rows.extend(
            r for r in zip(*(t.column(c).to_pylist() for c in columns), strict=True)
            if r[0] is not None and (r[0] - 1) // SHARD_ARCHS == shard
        )
    return rows


def complete_ids(tables_root: str | Path, space: str = DEFAULT_SPACE) -> set[int]:
    """The arch ids `is_complete` holds true for, from one read of the manifest and the results tables."""
    root = Path(tables_root)
    kinds: dict[int, set[str]] = {}
    for aid, kind in _stored_rows(root, "manifest", ["arch_id", "kind"]):
        kinds.setdefault(aid, set()).add(kind)
    want = set(CHECKPOINT_KINDS)
    if space != DEFAULT_SPACE:
        stored = _result_ids(root, space)
        return {aid for aid, k in kinds.items() if k == want and aid in stored}
    counts = [Counter(aid for (aid,) in _stored_rows(root, n, ["arch_id"])) for n in ("runs", "test_metrics")]
    return {aid for aid, k in kinds.items() if k == want and all(c[aid] == 1 for c in counts)}
