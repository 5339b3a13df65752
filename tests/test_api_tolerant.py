"""Tolerant reading of a published-layout jsonl: each odd kind the official class reads, the one-line
summary, --strict, duplicates, and the bad-input messages of `query`/`top` (line numbers, filters)."""

from __future__ import annotations

import copy
import math

import numpy as np
import orjson
import pytest

from factory.cli import main
from nares.api import Metric, open_dataset
from nares.errors import ArchError, DataError
from nares.records import RecordError, write_jsonl
from nares.spaces.wrn import all_archs
from nares.synthetic import synthetic_records

PICK = all_archs()[::1250]  # 13 architectures


@pytest.fixture(autouse=True)
def cache_env(tmp_path, monkeypatch):
    monkeypatch.setenv("NARES_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return synthetic_records(archs=PICK, epochs=6, seed=3)


def _write(path, recs) -> None:
    with open(path, "wb") as fh:
        for r in recs:
            fh.write(orjson.dumps(r) + b"\n")


@pytest.fixture
def odd(records, tmp_path):
    """A file with one record of each odd kind (file lines 2..7) and the rest regular."""
    recs = copy.deepcopy(records)
    del recs[1]["test_best"][0]["corruptions"]  # line 2
    recs[2]["test_best"][0]["Linf_aa_acc"] = None  # line 3
    del recs[3]["test_best"][0]["Linf_cw_lip"]  # line 4
    recs[4]["train"][0]["pgd"][0] = 100.5  # line 5
    recs[4]["test_best"][0]["corruptions"]["fog"]["3"]["acc"] = 101.25
    tr = recs[5]["train"][0]  # line 6: lists of unequal length (cw_loss one epoch short)
    tr["cw_loss"] = tr["cw_loss"][:-1]
    recs[6]["train"][0]["val_loss"][1] = None  # line 7
    path = tmp_path / "odd.jsonl"
    _write(path, recs)
    return path, recs


def test_each_odd_kind_is_kept_with_missing_values_and_one_summary(odd, records, capsys):
    path, recs = odd
    ds = open_dataset(path)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"nares: note: {path}: 6 of 13 records")
    ids = [r["arch_id"] for r in recs]
    for text in (f"no corruptions key: 1 (arch_id {ids[1]})", f"null or missing test_best value: 2 (arch_id "
                 f"{', '.join(map(str, sorted(ids[2:4])))})", f"percentage outside [0, 100]: 1 (arch_id {ids[4]})",
                 f"per-epoch lists of unequal length: 1 (arch_id {ids[5]})", f"null in a per-epoch list: 1 (arch_id {ids[6]})"):
        assert text in err[0]
    assert len(ds) == len(recs)
    assert ds.metric(ids[1], Metric.TEST_CORRUPT_ACC) is None
    assert ds.query(ids[1])["test_best"][0]["corruptions"] == {}
    assert ds.metric(ids[2], Metric.TEST_AA_ACC) is None and ds.query(ids[2])["test_best"][0]["Linf_aa_acc"] is None
    assert ds.metric(ids[3], Metric.TEST_CW_LIP) is None
    assert ds.metric(ids[3], Metric.TEST_CW_ACC) == recs[3]["test_best"][0]["Linf_cw_acc"]
    # a percentage above 100 is kept as it is, in the record and in the curves
    q4 = ds.query(ids[4])
    assert q4["train"][0]["pgd"][0] == 100.5 and q4["test_best"][0]["corruptions"]["fog"]["3"]["acc"] == 101.25
    # unequal lists: padded in the tables, returned at their own length
    q5 = ds.query(ids[5])["train"][0]
    assert len(q5["cw_loss"]) == 5 and len(q5["cw"]) == 6 and q5["cw_loss"] == recs[5]["train"][0]["cw_loss"]
    assert q5["pgd"] == recs[5]["train"][0]["pgd"]
    q6 = ds.query(ids[6])["train"][0]
    assert q6["val_loss"][1] is None and q6["val_loss"][0] == recs[6]["train"][0]["val_loss"][0]
    # every regular record and every regular value is unchanged
    for i in (0, *range(7, len(recs))):
        assert ds.query(ids[i]) == records[i]
    for m in Metric:
        if m is not Metric.TEST_CORRUPT_ACC:
            assert ds.metric(ids[0], m) == open_dataset_regular(records, path.parent).metric(ids[0], m)


def open_dataset_regular(records, folder):
    path = folder / "regular.jsonl"
    if not path.exists():
        write_jsonl(path, records)
    return open_dataset(path)


def test_strict_refuses_each_odd_kind_with_its_line(odd, records, tmp_path):
    path, recs = odd
    with pytest.raises(RecordError, match=rf"^{path}:2: record {recs[1]['arch_id']}: test_best\[0\] lacks 'corruptions'"):
        open_dataset(path, strict=True)
    for line, (mutate, message) in enumerate([
        (lambda r: r["test_best"][0].update(Linf_aa_acc=None), r"test_best\[0\].Linf_aa_acc=None is not a finite"),
        (lambda r: r["train"][0].update(pgd=[101.0] * 6), r"train\[0\].pgd is outside \[0, 100\]"),
        (lambda r: r["train"][0].update(cw=r["train"][0]["cw"][:3]), r"train\[0\].cw has 3 epochs, train_loss has 6"),
    ], 1):
        bad = copy.deepcopy(records)
        mutate(bad[1])
        p = tmp_path / f"strict{line}.jsonl"
        _write(p, bad)
        with pytest.raises(RecordError, match=rf"^{p}:2: record {bad[1]['arch_id']}: {message}"):
            open_dataset(p, strict=True)
        assert len(open_dataset(p)) == len(bad)  # the same file, tolerant


def test_cached_reopen_repeats_the_summary_and_strict_still_refuses(odd, capsys):
    path, _ = odd
    open_dataset(path)
    first = capsys.readouterr().err
    ds = open_dataset(path)  # from the cache
    assert capsys.readouterr().err == first and len(ds) == 13
    with pytest.raises(RecordError, match=rf"^{path}:2: record \d+: test_best\[0\] has no corruptions"):
        open_dataset(path, strict=True)


def test_cli_strict_and_tolerant(odd, capsys):
    path, recs = odd
    assert main(["query", str(recs[1]["arch_id"]), "--data", str(path), "--strict"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"nares: error: {path}:2: record ")
    assert main(["query", str(recs[2]["arch_id"]), "--data", str(path)]) == 0
    out = capsys.readouterr()
    assert "TEST_AA_ACC (%)" in out.out and out.err.count("\n") == 1
    aa = next(line for line in out.out.splitlines() if line.startswith("TEST_AA_ACC"))
    assert aa.split()[-1] == "—"


def test_duplicates_are_refused_even_when_tolerant(records, tmp_path):
    recs = copy.deepcopy(records)
    dup_id = copy.deepcopy(recs[4])
    dup_id["arch"] = recs[9]["arch"] | {}
    recs[9]["arch"] = dict(zip(("D1", "W1", "D2", "W2", "D3", "W3"), (11, 16, 11, 16, 11, 16), strict=True))
    p = tmp_path / "dup_id.jsonl"
    _write(p, [*recs[:6], dup_id, *recs[6:]])
    for strict in (False, True):
        with pytest.raises(DataError, match=rf"^{p}: line 7 repeats arch_id {recs[4]['arch_id']} of line 5"):
            open_dataset(p, strict=strict)
    recs = copy.deepcopy(records)
    twin = copy.deepcopy(recs[2])
    twin["arch_id"] = 15625 if recs[2]["arch_id"] != 15625 else 1
    p = tmp_path / "dup_arch.jsonl"
    _write(p, [*recs, twin])
    arch = "-".join(str(twin["arch"][k]) for k in ("D1", "W1", "D2", "W2", "D3", "W3"))
    with pytest.raises(DataError, match=rf"line 14 \(arch_id {twin['arch_id']}\) holds architecture {arch}, already at "
                                        rf"line 3 \(arch_id {recs[2]['arch_id']}\)"):
        open_dataset(p)
    assert main(["top", "--metric", "VAL_PGD_ACC", "--data", str(p)]) == 2


def test_empty_file_and_missing_key_messages_name_the_users_file_and_line(records, tmp_path, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    blank = tmp_path / "blank.jsonl"
    blank.write_bytes(b"\n\n")
    for p in (empty, blank):
        assert main(["top", "--metric", "VAL_PGD_ACC", "--data", str(p)]) == 2
        err = capsys.readouterr().err
        assert err == f"nares: error: data file {p} holds no records\n" and ".partial" not in err
    recs = copy.deepcopy(records)
    del recs[7]["train"][0]["pgd_lip"]
    p = tmp_path / "missing.jsonl"
    _write(p, recs)
    with pytest.raises(RecordError, match=rf"^{p}:8: record {recs[7]['arch_id']}: train\[0\] lacks 'pgd_lip'$"):
        open_dataset(p)
    p.write_bytes(orjson.dumps(records[0]) + b"\n[1, 2]\n")
    with pytest.raises(RecordError, match=rf"^{p}:2: record is a list"):
        open_dataset(p)


def test_filter_values_are_checked_before_any_work(records, tmp_path, capsys):
    p = tmp_path / "ok.jsonl"
    write_jsonl(p, records)
    missing = tmp_path / "absent.jsonl"  # the filters are refused before the file is even looked at
    for argv, message in [
        (["-k", "0"], "-k 0 is not allowed: give a positive number of architectures"),
        (["--where", "d1=6"], "--where d1=6 is not allowed: d1 takes values among [4, 5, 7, 9, 11]"),
        (["--where", "w2=4,8"], "--where w2=4 is not allowed: w2 takes values among [8, 10, 12, 14, 16]"),
        (["--where", "x9=4"], "unknown filter 'x9'"),
        (["--max-macs", "nan"], "--max-macs=nan is not allowed: give a finite non-negative number"),
        (["--min-params", "-1"], "--min-params=-1.0 is not allowed"),
    ]:
        assert main(["top", "--metric", "VAL_PGD_ACC", *argv, "--data", str(missing)]) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith(f"nares: error: {message}") and err.count("\n") == 1, err
    ds = open_dataset(p)
    with pytest.raises(DataError, match="k=0 must be a positive integer"):
        ds.top("VAL_PGD_ACC", 0)
    with pytest.raises(ArchError, match=r"d1=6 is not allowed"):
        ds.top("VAL_PGD_ACC", 3, d1=6)
    with pytest.raises(DataError, match="max_macs=nan is not allowed"):
        ds.filter(max_macs=math.nan)
    assert len(ds.top("VAL_PGD_ACC", 20, d1=[4, 5])) == len(ds.filter(d1=(4, 5))) == 5  # valid filters still work
    best = ds.top("VAL_PGD_ACC", 1, max_macs=np.float64(1e12))
    assert best and best[0][1] == ds.values("VAL_PGD_ACC").max()
