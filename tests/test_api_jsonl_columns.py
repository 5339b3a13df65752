"""The columnar jsonl reader against the record path: same tables for any file order and epoch counts,
integer counts, and TEST_CORRUPT_ACC equal to the official class's value to the bit."""

from __future__ import annotations

import math
import random

import numpy as np
import orjson
import pytest

from nares.api import Metric, get_metric, open_dataset, open_folder
from nares.api.jsonl import read_jsonl_tables
from nares.errors import DataError
from nares.records import RecordError, write_jsonl
from nares.spaces.wrn import all_archs
from nares.store.tables import RECORD_TABLES, records_to_tables, write_tables
from nares.synthetic import synthetic_records


@pytest.fixture(autouse=True)
def cache_env(tmp_path, monkeypatch):
    monkeypatch.setenv("NARES_CACHE_DIR", str(tmp_path / "cache"))


def official_corrupt_acc(record: dict) -> float:
    """PROTOCOL §9: per severity the mean over the corruptions (numpy, in file order), then the mean of those."""
    corr = record["test_best"][0]["corruptions"]
    per_level = np.array([[cells[s]["acc"] for s in ("1", "2", "3", "4", "5")] for cells in corr.values()]).mean(axis=0)
    return float(np.mean(per_level.tolist()))


def _mixed_records() -> list[dict]:
    """Records in shuffled file order, with 3 and 5 epochs, one without CIFAR-10-C."""
    a = synthetic_records(archs=all_archs()[::1500], epochs=3, seed=1)
    b = synthetic_records(archs=all_archs()[7::1500], epochs=5, seed=2)
    recs = a + b
    random.Random(0).shuffle(recs)
    recs[2]["test_best"][0]["corruptions"] = {}
    return recs


def test_columnar_reader_builds_the_record_tables_exactly(tmp_path):
    recs = _mixed_records()
    path = tmp_path / "mixed.jsonl"
    write_jsonl(path, recs)
    parsed = read_jsonl_tables(path)
    assert parsed.report.odd == {} and parsed.report.n_records == len(recs)
    parsed.write(tmp_path / "ours", 1000)
    write_tables(records_to_tables(sorted(recs, key=lambda r: r["arch_id"])), tmp_path / "reference")
    import pyarrow.parquet as pq

    for name in RECORD_TABLES:
        ours = pq.read_table(tmp_path / "ours" / f"{name}.parquet")
        ref = pq.read_table(tmp_path / "reference" / name)
        cols = [c for c in ours.column_names if not (name == "test_metrics" and c == "corrupt_acc")]
        assert ours.select(cols).equals(ref.select(cols)), name
    ds = open_dataset(path)
    for r in recs:
        assert ds.query(r["arch_id"]) == r
    # the summary built from the buffers equals the one built from the written tables
    folder = open_folder(tmp_path / "ours")
    assert ds.summary.column_names == folder.summary.column_names
    for m in Metric:
        np.testing.assert_array_equal(ds.values(m), folder.values(m), err_msg=m.value)
    assert ds.archs() == folder.archs() and list(ds.arch_ids) == sorted(r["arch_id"] for r in recs)


def test_integer_counts_are_read_as_counts_and_reported(tmp_path):
    recs = synthetic_records(archs=all_archs()[:3], epochs=2, seed=0)
    for r in recs:
        r["MACs"], r["Params"] = round(r["MACs"] * 1e6), round(r["Params"] * 1e6)
    path = tmp_path / "ints.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in recs))
    ds = open_dataset(path)
    assert ds.report.counts_unit == "count"
    assert ds.metric(recs[0]["arch_id"], Metric.MACS) == recs[0]["MACs"] / 1e6


def _corruption_records(decimals: int | None) -> list[dict]:
    recs = synthetic_records(archs=all_archs()[::400], epochs=2, seed=4)
    rng = np.random.default_rng(7)
    for r in recs:
        for cells in r["test_best"][0]["corruptions"].values():
            for cell in cells.values():
                v = float(rng.uniform(20, 90))
                cell["acc"] = v if decimals is None else round(v, decimals)
        sev = r["test_best"][0]["corruptions"]["fog"]  # severities out of order in the file
        r["test_best"][0]["corruptions"]["fog"] = {s: sev[s] for s in ("3", "1", "5", "2", "4")}
    return recs


@pytest.mark.parametrize("decimals", [None, 2])
def test_corrupt_acc_equals_the_official_value_to_the_bit(tmp_path, decimals):
    recs = _corruption_records(decimals)
    official = [official_corrupt_acc(r) for r in recs]
    fsum = [math.fsum(c["acc"] for s in r["test_best"][0]["corruptions"].values() for c in s.values()) / 95 for r in recs]
    assert sum(o != f for o, f in zip(official, fsum, strict=True)) >= 5  # summation order matters here
    path = tmp_path / "c.jsonl"
    write_jsonl(path, recs)
    ds = open_dataset(path)
    for r, o in zip(recs, official, strict=True):
        assert ds.metric(r["arch_id"], Metric.TEST_CORRUPT_ACC) == o
        assert get_metric(r, Metric.TEST_CORRUPT_ACC) == o
    if decimals is not None:  # a release folder (tables in fractions) gives the same bits
        write_tables(records_to_tables(recs), tmp_path / "release" / "tables")
        rel = open_folder(tmp_path / "release")
        assert [rel.metric(r["arch_id"], Metric.TEST_CORRUPT_ACC) for r in recs] == official


def test_two_process_reading_equals_one_pass(tmp_path, monkeypatch):
    """A large file is read by two processes; forced here on small files, every result must be the one
    of a single pass: tables, summary, odd-value report, and errors with their line numbers."""
    import copy

    import pyarrow.parquet as pq

    import nares.api.jsonl as J

    recs = _mixed_records() + synthetic_records(archs=all_archs()[3::1500], epochs=4, seed=5)
    odd = copy.deepcopy(recs)
    del odd[2]["test_best"][0]["corruptions"]
    odd[-2]["test_best"][0]["Linf_pgd_acc"] = None  # odd values in both halves
    odd[-1]["train"][0]["pgd"][1] = 120.0
    path = tmp_path / "odd.jsonl"
    write_jsonl(path, odd)

    def both(p):
        monkeypatch.setattr(J, "PARALLEL_MIN_BYTES", 1 << 40)
        one = J.read_jsonl_tables(p)
        monkeypatch.setattr(J, "PARALLEL_MIN_BYTES", 0)
        return one, J.read_jsonl_tables(p)

    monkeypatch.setattr(J, "_idle_cpu", lambda: True)  # whatever the machine's load

    one, two = both(path)
    assert one.report.to_json() == two.report.to_json() and one.sha256 == two.sha256
    assert len(two.report.odd) == 3
    assert one.summary().equals(two.summary())
    one.write(tmp_path / "one", 100)
    two.write(tmp_path / "two", 100)
    for name in RECORD_TABLES:
        assert pq.read_table(tmp_path / "one" / f"{name}.parquet").equals(pq.read_table(tmp_path / "two" / f"{name}.parquet"))
    monkeypatch.setattr(J, "PARALLEL_MIN_BYTES", 0)
    bad = copy.deepcopy(recs)
    del bad[-3]["train"][0]["cw"]
    write_jsonl(path, bad)
    with pytest.raises(RecordError, match=rf"^{path}:{len(bad) - 2}: record {bad[-3]['arch_id']}: train\[0\] lacks 'cw'$"):
        J.read_jsonl_tables(path)
    dup = copy.deepcopy(recs)
    dup[-1]["arch_id"] = dup[0]["arch_id"]
    write_jsonl(path, dup)
    with pytest.raises(DataError, match=rf"line {len(dup)} repeats arch_id {dup[0]['arch_id']} of line 1;"):
        J.read_jsonl_tables(path)
