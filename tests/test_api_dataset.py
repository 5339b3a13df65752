"""The query API on synthetic jsonl files: exact round trip, metrics, filters, top-k, optimum, SQL, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest

from factory.cli import main
from nares.api import Dataset, Metric, MetricError, get_metric, open_dataset
from nares.errors import ArchError, DataError
from nares.records import RecordError, write_jsonl
from nares.spaces.wrn import Arch, all_archs
from nares.synthetic import PLANTED_OPTIMUM, synthetic_records

WRN_34_10 = Arch.parse("5-10-5-10-5-10")
PICK = [WRN_34_10, PLANTED_OPTIMUM, *all_archs()[::409]]


@pytest.fixture(scope="module")
def cache_env(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NARES_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="module")
def records() -> list[dict]:
    recs = synthetic_records(archs=PICK, epochs=8, seed=5)
    recs[3]["test_best"][0]["corruptions"] = {}  # one architecture without CIFAR-10-C
    return recs


@pytest.fixture(scope="module")
def jsonl(records, tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "cifar10.jsonl"
    write_jsonl(path, records)
    return path


@pytest.fixture(scope="module")
def ds(jsonl, cache_env) -> Dataset:
    return open_dataset(jsonl)


def test_query_returns_the_published_record_exactly(ds, records):
    assert len(ds) == len(records)
    for r in records:
        assert ds.query(Arch.parse(r["arch"])) == r
    r0 = records[0]
    a0 = Arch.parse(r0["arch"])
    assert ds.query(str(a0)) == ds.query(a0.to_tuple()) == ds.query(r0["arch_id"]) == ds.query(r0["arch"]) == r0
    got = ds.batch_query([records[2]["arch_id"], str(a0), records[2]["arch_id"]])
    assert got == [records[2], r0, records[2]]
    assert ds.batch_query([]) == []


def test_every_metric_matches_the_record(ds, records):
    for r in records:
        for m in Metric:
            expected = get_metric(r, m)
            got = ds.metric(r["arch_id"], m)
            if expected is None:
                assert got is None and m is Metric.TEST_CORRUPT_ACC
            elif m is Metric.TEST_CORRUPT_ACC:
                assert got == pytest.approx(expected, rel=1e-12)
            else:
                assert got == expected, m
    r = records[0]
    tr = r["train"][0]
    assert get_metric(r, "val_pgd_acc") == tr["pgd"][tr["best_epoch"]]
    assert get_metric(r, Metric.TRAIN_LOSS) == tr["train_loss"][tr["best_epoch"]]
    cells = [c["acc"] for s in r["test_best"][0]["corruptions"].values() for c in s.values()]
    assert get_metric(r, Metric.TEST_CORRUPT_ACC) == pytest.approx(sum(cells) / 95)
    assert get_metric(r, Metric.MACS) == r["MACs"]


def test_objective_refuses_test_metrics(ds):
    assert ds.get_objective(WRN_34_10) == ds.metric(WRN_34_10, Metric.VAL_PGD_ACC)
    assert ds.get_objective(WRN_34_10, "VAL_CW_ACC") == ds.metric(WRN_34_10, Metric.VAL_CW_ACC)
    assert ds.objective_values() is ds.values(Metric.VAL_PGD_ACC)
    for m in Metric:
        if m.is_test:
            with pytest.raises(MetricError, match=m.value):
                ds.get_objective(WRN_34_10, m)
            with pytest.raises(MetricError, match=m.value):
                ds.objective_values(m)
    with pytest.raises(MetricError, match="unknown metric 'VAL_FOO'"):
        Metric.parse("VAL_FOO")


def test_optimum_top_and_filters_agree_with_brute_force(ds, records):
    val = {r["arch_id"]: get_metric(r, Metric.VAL_PGD_ACC) for r in records}
    assert ds.optimum(Metric.VAL_PGD_ACC) == (PLANTED_OPTIMUM, max(val.values()))
    aa = sorted((-get_metric(r, "TEST_AA_ACC"), r["arch_id"]) for r in records if r["MACs"] <= 10e3)
    top = ds.top("TEST_AA_ACC", 4, max_macs=10e9)
    assert [ds.id_of(a) for a, _ in top] == [i for _, i in aa[:4]]
    assert [v for _, v in top] == [-v for v, _ in aa[:4]]
    lip = ds.top(Metric.TEST_PGD_LIP, 1)[0]  # lower is better for a Lipschitz estimate
    assert lip[1] == min(get_metric(r, Metric.TEST_PGD_LIP) for r in records)
    worst = ds.top(Metric.VAL_PGD_ACC, 1, best_first=False)[0][1]
    assert worst == min(val.values())
    d4 = ds.filter(d1=4, w3=(8, 10))
    assert d4 == sorted((Arch.parse(r["arch"]) for r in records if r["arch"]["D1"] == 4 and r["arch"]["W3"] in (8, 10)),
                        key=ds.id_of)
    big = ds.filter(min_params=50e6, max_macs=20e9)
    assert {str(a) for a in big} == {str(Arch.parse(r["arch"])) for r in records if r["Params"] >= 50 and r["MACs"] <= 20e3}
    corrupt = ds.top(Metric.TEST_CORRUPT_ACC, 100)
    assert len(corrupt) == len(records) - 1  # the architecture without CIFAR-10-C is skipped
    with pytest.raises(ArchError, match="unknown filter 'depth'"):
        ds.filter(depth=4)


def test_curves_sql_and_frame(ds, records):
    r = records[1]
    curves = ds.curves(r["arch_id"])
    for k in ("pgd", "cw", "train_loss", "pgd_lip", "val_acc"):
        assert curves[k] == r["train"][0][k]
    n = ds.sql("SELECT count(*) AS n FROM summary WHERE val_pgd_acc > 0.45").column("n")[0].as_py()
    assert n == sum(get_metric(x, "VAL_PGD_ACC") > 45 for x in records)
    h = ds.sql("SELECT count(*) AS n FROM history").column("n")[0].as_py()
    assert h == 8 * len(records)
    df = ds.frame(["TEST_PGD_ACC"])
    assert list(df.columns[-1:]) == ["TEST_PGD_ACC"] and len(df) == len(records)
    with pytest.raises(DataError, match="SQL failed"):
        ds.sql("SELECT nope FROM summary")


def test_second_open_reads_the_cache(jsonl, cache_env, monkeypatch):
    import nares.store.tables as tables

    def refuse(*_a, **_k):
        raise AssertionError("the jsonl was parsed again")

    monkeypatch.setattr(tables, "records_to_tables", refuse)
    t0 = time.perf_counter()
    again = open_dataset(data=jsonl)
    assert time.perf_counter() - t0 < 2.0
    assert again.metric(WRN_34_10, "TEST_AA_ACC") == open_dataset(jsonl).metric(WRN_34_10, "TEST_AA_ACC")


def test_bad_sources_and_archs_are_one_line_errors(ds, tmp_path, cache_env):
    assert "4-8-4-8-4-10" not in ds and WRN_34_10 in ds
    with pytest.raises(ArchError, match="4-8-4-8-4-10 is not in this dataset"):
        ds.query("4-8-4-8-4-10")
    with pytest.raises(ArchError, match="arch_id 99999"):
        ds.query(99999)
    with pytest.raises(ArchError, match="D1-W1-D2-W2-D3-W3"):
        ds.query("5-10-5")
    with pytest.raises(DataError, match="does not exist"):
        open_dataset(data=tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"arch_id": 1}\n')
    with pytest.raises(RecordError):
        open_dataset(data=bad)
    with pytest.raises(DataError, match="exactly one"):
        open_dataset(tmp_path, data=bad)
    with pytest.raises(DataError, match="neither Parquet tables nor a cifar10.jsonl"):
        open_dataset(tmp_path)


def test_cli_query_and_top(jsonl, records, cache_env, capsys):
    assert main(["query", "5-10-5-10-5-10", "--data", str(jsonl), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == records[[Arch.parse(r["arch"]) for r in records].index(WRN_34_10)]
    assert main(["query", "5-10-5-10-5-10", str(records[0]["arch_id"]), "--data", str(jsonl)]) == 0
    out = capsys.readouterr().out
    assert "VAL_PGD_ACC (%)" in out and "5-10-5-10-5-10" in out and str(records[0]["arch_id"]) in out
    assert main(["top", "--metric", "TEST_AA_ACC", "-k", "3", "--max-macs", "10e9", "--data", str(jsonl), "--json"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    ds = open_dataset(jsonl)
    assert [(r["arch"], r["value"]) for r in rows] == [(str(a), v) for a, v in ds.top("TEST_AA_ACC", 3, max_macs=10e9)]
    assert all(r["macs_m"] <= 10e3 for r in rows)
    assert main(["top", "--metric", "TEST_AA_ACC", "--where", "d1=4,5", "--data", str(jsonl), "--json"]) == 0
    assert all(json.loads(x)["arch"].split("-")[0] in ("4", "5") for x in capsys.readouterr().out.splitlines())
    assert main(["top", "--metric", "BOGUS", "--data", str(jsonl)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nares: error: unknown metric 'BOGUS'") and err.count("\n") == 1


def test_cli_start_up_leaves_the_dataset_api_unimported():
    code = ("import sys; from factory.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('nares.api', 'numpy', 'pyarrow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_values_are_read_only_columns(ds):
    v = ds.values(Metric.TEST_PGD_ACC)
    assert v.shape == (len(ds),) and not v.flags.writeable
    assert np.array_equal(ds.arch_ids, np.sort(ds.arch_ids))
