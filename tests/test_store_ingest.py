"""Ingest of finished run folders into the real object store and the tables."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow.compute as pc
import pytest

from nares.constants import CHECKPOINT_KINDS
from nares.records import HISTORY_KEYS, HISTORY_PCT, count_from_published, fraction_from_pct, write_jsonl
from nares.results.store import read_results
from nares.spaces.wrn import ArchIndex
from nares.store.ingest import IngestError, complete_ids, ingest_run, is_complete
from nares.store.objects import ObjectStore
from nares.store.tables import RECORD_TABLES, SHARD_ARCHS, read_tables, records_to_tables, write_tables
from nares.synthetic import synthetic_manifest, synthetic_records
from tests.s3_fixtures import s3_server_fixture, s3_store_fixture  # noqa: F401  (fixtures)

pytestmark = pytest.mark.services


def make_run_dir(root: Path, record: dict, *, seed: int = 0) -> Path:
    """A run folder in the trainer's layout: completion marker, four checkpoint files, record, evaluations."""
    arch = "-".join(str(record["arch"][k]) for k in ("D1", "W1", "D2", "W2", "D3", "W3"))
    run = root / arch
    (run / "checkpoints").mkdir(parents=True)
    n_epochs = len(record["train"][0]["train_loss"])
    epochs = {
        "e74": n_epochs - 3,
        "e89": n_epochs - 2,
        "last": n_epochs - 1,
        "best": record["train"][0]["best_epoch"],
    }
    ckpts = {}
    for kind in CHECKPOINT_KINDS:
        data = hashlib.sha256(f"{arch}/{kind}/{seed}".encode()).digest() * 64
        (run / "checkpoints" / f"{kind}.pt").write_bytes(data)
        ckpts[kind] = {
            "file": f"checkpoints/{kind}.pt",
            "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data),
            "epoch": epochs[kind],
        }
    done = {
        "arch": arch,
        "device": "cpu",
        "gpu_type": record["train"][0]["gpu_type"],
        "timestamp": record["train"][0]["timestamp"],
        "code_version": "0.1.0",
        "preset_hash": "abc",
        "phases": {"train": {"device": "cpu", "device_seconds": 120.0}},
        "checkpoints": ckpts,
        "seed": record["train"][0]["seed"],
        "best_epoch": record["train"][0]["best_epoch"],
        "training_time_device_days": record["train"][0]["training_time"],
        "history": {k: fraction_from_pct(v) if k in HISTORY_PCT else v
                    for k, v in record["train"][0].items() if k in HISTORY_KEYS},
    }
    (run / "train_done.json").write_text(json.dumps(done))
    write_jsonl(run / "record.jsonl", [record])
    cells = [
        {
            "arch": arch,
            "checkpoint": "best",
            "metric": m,
            "metric_version": 1,
            "status": "done",
            "device": "cpu",
            "device_seconds": 1.5,
            "started_at": "2025-01-02T10:00:00Z",
            "finished_at": "2025-01-02T10:00:02Z",
            "code_version": "0.1.0",
            "preset_hash": "def",
            "values": values,
            "extra_key": "tolerated",
        }
        for m, values in record_cells(record).items()
    ]
    (run / "evaluations.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cells))
    return run


def record_cells(record: dict) -> dict[str, dict]:
    """The evaluator's cell values (fractions, exact counts) that hold a published record's test entry."""
    t = record["test_best"][0]

    def f(key: str) -> float:
        return fraction_from_pct(t[key])

    cells = {
        "clean": {"acc": f("test_clean_acc"), "loss": t["test_loss"]},
        "fgsm": {"acc": f("Linf_fgsm_acc"), "stable": f("Linf_fgsm_stable")},
        **{m: {"acc": f(f"Linf_{m}_acc"), "stable": f(f"Linf_{m}_stable"), "lip": t[f"Linf_{m}_lip"]}
           for m in ("pgd", "cw")},
        "aa": {"acc": f("Linf_aa_acc")},
        "complexity": {"params": count_from_published(record["Params"], "Params"),
                       "macs": count_from_published(record["MACs"], "MACs")},
    }
    if t.get("corruptions"):
        cells["corruptions"] = {name: {s: {"acc": fraction_from_pct(c["acc"]), "loss": c["loss"]}
                                       for s, c in sev.items()} for name, sev in t["corruptions"].items()}
    return cells


def test_ingest_uploads_checkpoints_and_fills_tables(s3_store: ObjectStore, tmp_path: Path):
    recs = synthetic_records(2, seed=0, epochs=6)
    runs = [make_run_dir(tmp_path / "runs", r) for r in recs]
    tables = tmp_path / "tables"
    aid = recs[0]["arch_id"]
    assert not is_complete(tables, aid)
    ingest_run(s3_store, tables, runs[0])
    assert is_complete(tables, aid) and not is_complete(tables, recs[1]["arch_id"])
    t = read_tables(tables)
    expected = records_to_tables([recs[0]])  # the record tables: the published record exported from the long rows
    assert all(t[n].equals(expected[n]) for n in RECORD_TABLES)
    man = sorted(t["manifest"].to_pylist(), key=lambda r: r["kind"])
    marker = json.loads((runs[0] / "train_done.json").read_text())["checkpoints"]
    assert [r["kind"] for r in man] == sorted(CHECKPOINT_KINDS)
    for row in man:
        assert row["sha256"] == marker[row["kind"]]["sha256"] and row["epoch"] == marker[row["kind"]]["epoch"]
        assert row["key"].endswith(row["sha256"]) and s3_store.verify(row["key"], row["sha256"])
    ledger = t["ledger"].to_pylist()
    assert sorted(r["metric"] for r in ledger) == ["aa", "clean", "complexity", "corruptions", "cw", "fgsm", "pgd",
                                                   "train"]
    train_row = next(r for r in ledger if r["metric"] == "train")
    assert train_row["device_seconds"] == 120.0 and train_row["device"] == "cpu"
    assert sum(r["device_seconds"] for r in ledger) == pytest.approx(120 + 7 * 1.5)
    # Idempotent: ingesting the same folder again changes no table and stores no new object.
    keys = s3_store.list_keys("")
    ingest_run(s3_store, tables, runs[0])
    again = read_tables(tables)
    assert all(again[n].equals(t[n]) for n in t) and s3_store.list_keys("") == keys
    ingest_run(s3_store, tables, runs[1], arch_id=recs[1]["arch_id"])
    assert read_tables(tables)["architectures"].num_rows == 2
    # the long-format rows: the run's training and every ledger value, the published record exported from them
    long = read_results(tables)
    assert sorted(set(long.column("arch_id").to_pylist())) == sorted(r["arch_id"] for r in recs)
    pgd = [r for r in long.to_pylist() if r["arch_id"] == aid and r["evaluation"] == "pgd"]
    assert [(r["metric"], r["value"], r["version"], r["settings_hash"], r["device_seconds"]) for r in pgd] == [
        (m, recs[0]["test_best"][0][f"Linf_pgd_{m}"], 1, "def", 1.5) for m in ("acc", "stable", "lip")]
    hist = [r["value"] for r in long.to_pylist() if r["arch_id"] == aid and r["metric"] == "train_acc"]
    assert hist == recs[0]["train"][0]["train_acc"]


def test_ingest_refuses_inconsistent_runs(s3_store: ObjectStore, tmp_path: Path):
    rec = synthetic_records(1, seed=1, epochs=5)[0]
    run = make_run_dir(tmp_path / "runs", rec)
    (run / "checkpoints" / "best.pt").write_bytes(b"not the checkpoint the marker describes")
    with pytest.raises(IngestError, match=r"best.pt has sha256 .* but train_done.json records"):
        ingest_run(s3_store, tmp_path / "tables", run)
    assert not is_complete(tmp_path / "tables", rec["arch_id"])
    cells = (run / "evaluations.jsonl").read_text().splitlines()
    (run / "evaluations.jsonl").write_text("".join(c + "\n" for c in cells if '"metric": "cw"' not in c))
    with pytest.raises(IngestError, match="lacks a cell of the published record .needs clean, fgsm, pgd, cw, aa and "):
        ingest_run(s3_store, tmp_path / "tables", run)


def test_complete_ids_agrees_with_is_complete(tmp_path: Path):
    """One read of the tables finds exactly the architectures `is_complete` accepts, over several shards."""
    root = tmp_path / "tables"
    assert complete_ids(root) == set()
    index = ArchIndex.default()
    ids = [3, SHARD_ARCHS + 5, 4 * SHARD_ARCHS + 1, 9000]  # complete, complete, 3 of 4 checkpoints, no manifest
    tables = records_to_tables(synthetic_records(archs=[index.arch_of(i) for i in ids], epochs=3, corruptions=False))
    manifest = synthetic_manifest([*ids[:3], 12000])  # 12000: manifest rows but no record
    drop = pc.and_(pc.equal(manifest["arch_id"], ids[2]), pc.equal(manifest["kind"], CHECKPOINT_KINDS[0]))
    tables["manifest"] = manifest.filter(pc.invert(drop))
    write_tables(tables, root)
    assert complete_ids(root) == {i for i in [*ids, 12000] if is_complete(root, i)} == set(ids[:2])
