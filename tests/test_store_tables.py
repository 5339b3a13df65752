"""Parquet tables: records ⇄ tables exactness, schemas, sharding and idempotent upserts."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from nares.records import read_jsonl, write_jsonl
from nares.store import tables as T
from nares.synthetic import synthetic_records
from tests.test_records_layout import make_record


def test_tables_hold_fractions_and_exact_counts():
    t = T.records_to_tables([make_record("4-8-4-8-4-8", 1)])
    a = t["architectures"].to_pylist()[0]
    assert a == {
        "arch_id": 1,
        "arch": "4-8-4-8-4-8",
        "d1": 4,
        "w1": 8,
        "d2": 4,
        "w2": 8,
        "d3": 4,
        "w3": 8,
        "params": 23_354_842,
        "macs": 3_361_936_896,
    }
    h = t["history"].to_pydict()
    assert (
        h["epoch"] == [0, 1, 2]
        and h["train_acc"] == [0.25, 0.3125, 0.5347]
        and h["pgd_lip"] == [3.5, 3.25, 3.0]
    )
    m = t["test_metrics"].to_pylist()[0]
    assert m["test_clean_acc"] == 0.5213 and m["aa_acc"] == 0.2 and m["cw_lip"] == 3.3
    assert m["corrupt_acc"] == pytest.approx((0.5 + 0.45) / 2, abs=1e-15)
    assert t["corruptions"].to_pydict() == {
        "arch_id": [1, 1],
        "corruption": ["fog", "fog"],
        "severity": [1, 2],
        "acc": [0.5, 0.45],
        "loss": [1.5, 1.6],
    }
    assert t["runs"].to_pylist() == [
        {
            "arch_id": 1,
            "seed": 7,
            "gpu_type": "cpu",
            "timestamp": "2025-03-04",
            "training_time_gpu_days": 0.0125,
            "best_epoch": 1,
        }
    ]
    for name, table in t.items():
        assert table.schema.equals(T.SCHEMAS[name]), name


def test_jsonl_tables_jsonl_round_trip_is_byte_exact(tmp_path):
    recs = synthetic_records(40, seed=3, epochs=12)
    recs[5]["test_best"][0]["corruptions"] = {}  # CIFAR-10-C not evaluated for one architecture
    src = tmp_path / "in.jsonl"
    write_jsonl(src, recs)
    T.write_tables(T.records_to_tables(read_jsonl(src)), tmp_path / "tables")
    back = T.tables_to_records(T.read_tables(tmp_path / "tables"))
    write_jsonl(tmp_path / "out.jsonl", back)
    assert (tmp_path / "out.jsonl").read_bytes() == src.read_bytes()
    assert (
        T.read_tables(tmp_path / "tables", ["test_metrics"])["test_metrics"].column("corrupt_acc")[5].as_py()
        is None
    )
    assert list(T.iter_records(T.read_tables(tmp_path / "tables"), chunk=7)) == recs


def test_published_raw_counts_and_percentages_import():
    rec = json.loads(json.dumps(make_record()))
    rec["Params"], rec["MACs"] = 23_354_842, 3_361_936_896  # raw integers instead of millions
    a = T.records_to_tables([rec])["architectures"]
    assert a.column("params")[0].as_py() == 23_354_842 and a.column("macs")[0].as_py() == 3_361_936_896
    assert (
        T.tables_to_records(T.records_to_tables([rec]))[0]["Params"] == 23.354842
    )  # written back in millions


def test_sharding_and_idempotent_upsert(tmp_path):
    recs = synthetic_records(archs=None, n=6, seed=0, epochs=3)
    ids = sorted(r["arch_id"] for r in recs)
    root = tmp_path / "tables"
    T.write_tables(T.records_to_tables(recs), root)
    T.write_tables(T.records_to_tables(recs[:2]), root)  # re-writing the same rows changes nothing
    got = T.read_tables(root)
    assert got["architectures"].column("arch_id").to_pylist() == ids
    assert got["history"].num_rows == 6 * 3 and got["corruptions"].num_rows == 6 * 95
    shards = {(i - 1) // T.SHARD_ARCHS for i in ids}
    assert sorted(p.name for p in (root / "history").iterdir()) == [
        f"part-{s:03d}.parquet" for s in sorted(shards)
    ]
    # An upsert of one architecture replaces all of its rows (history shrinks from 3 epochs to 2).
    changed = synthetic_records(archs=[_arch(recs[0])], n=1, seed=0, epochs=2)
    T.write_tables(T.records_to_tables(changed), root)
    h = T.read_tables(root, ["history"])["history"]
    aid = changed[0]["arch_id"]
    assert h.filter(pa.compute.equal(h.column("arch_id"), aid)).num_rows == 2 and h.num_rows == 5 * 3 + 2


def test_a_killed_writers_temp_file_is_cleared_by_the_next_write(tmp_path):
    root = tmp_path / "tables"
    stale = root / "history" / ".part-000.parquet.k1ll3d.partial"  # what atomic_write leaves when SIGKILLed
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half a shard")
    recs = synthetic_records(archs=None, n=1, seed=0, epochs=3)
    T.write_tables(T.records_to_tables(recs), root)
    assert not stale.exists()
    shard = (recs[0]["arch_id"] - 1) // T.SHARD_ARCHS
    assert [p.name for p in (root / "history").iterdir()] == [f"part-{shard:03d}.parquet"]


def _arch(rec: dict) -> str:
    a = rec["arch"]
    return "-".join(str(a[k]) for k in ("D1", "W1", "D2", "W2", "D3", "W3"))


def test_manifest_and_ledger_upsert_by_row_key(tmp_path):
    row = {"arch_id": 3, "kind": "best", "key": "k1", "sha256": "a" * 64, "size": 10, "epoch": 4}
    T.write_tables({"manifest": pa.Table.from_pylist([row], schema=T.SCHEMAS["manifest"])}, tmp_path)
    T.write_tables(
        {
            "manifest": pa.Table.from_pylist(
                [{**row, "kind": "last", "epoch": 5}], schema=T.SCHEMAS["manifest"]
            )
        },
        tmp_path,
    )
    T.write_tables(
        {"manifest": pa.Table.from_pylist([{**row, "key": "k2"}], schema=T.SCHEMAS["manifest"])}, tmp_path
    )
    m = T.read_tables(tmp_path, ["manifest"])["manifest"].to_pylist()
    assert sorted((r["kind"], r["key"]) for r in m) == [("best", "k2"), ("last", "k1")]
    assert (
        T.read_tables(tmp_path, ["ledger"])["ledger"].num_rows == 0
    )  # never written: empty, with its schema


def test_bad_tables_are_refused(tmp_path):
    with pytest.raises(T.TableError, match="unknown table 'histories'"):
        T.read_tables(tmp_path, ["histories"])
    with pytest.raises(T.TableError, match=r"table 'manifest' lacks columns \['sha256'"):
        T.write_tables({"manifest": pa.table({"arch_id": [1], "kind": ["best"], "key": ["k"]})}, tmp_path)
    rec = make_record()
    with pytest.raises(T.TableError, match="arch_id 1 appears in more than one record"):
        T.records_to_tables([rec, rec])
