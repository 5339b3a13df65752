"""Long-format results: the rows of a real tiny run folder, the NARes exporter reproducing its record.jsonl byte
for byte, the sharded store, and `nares results` on a run folder, a jsonl and a release."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pyarrow as pa
import pytest
import torch

from factory.cli import main
from nares.data import load_splits
from nares.evaluate import evaluate_run
from nares.evaluate.ledger import read_cells
from nares.exporters.nares_jsonl import read_jsonl_long, records_to_long, write_long_jsonl
from nares.records import HISTORY_KEYS, HISTORY_PCT, pct_from_fraction, write_jsonl
from nares.results import LONG_COLUMNS, filter_rows, run_rows
from nares.results.store import read_results, write_results
from nares.spaces.wrn import arch_id
from nares.synthetic import synthetic_records
from nares.train import train_arch
from tests.test_train_resume import ARCH, micro_cfg

pytestmark = pytest.mark.slow  # trains and evaluates a tiny model once (~30 s on 2 busy cores)


@pytest.fixture(scope="module")
def run(tmp_path_factory, data_dir):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    cfg = micro_cfg()
    out = tmp_path_factory.mktemp("resultsrun")
    splits = load_splits(cfg["data"], root=data_dir, seed=0)
    train_arch(ARCH, cfg, out, device="cpu", splits=splits, progress=False)
    evaluate_run(out, cfg, device="cpu", splits=splits)
    yield cfg, out
    torch.set_num_threads(before)


def _rows(table, **eq):
    return [r for r in table.to_pylist() if all(r[k] == v for k, v in eq.items())]


def test_run_rows_hold_every_value(run):
    cfg, out = run
    t = run_rows(out)
    assert tuple(t.column_names) == LONG_COLUMNS
    done = json.loads((out / "train_done.json").read_text())
    epochs = cfg["train"]["epochs"]
    train = _rows(t, evaluation="train")
    assert len(train) == len(HISTORY_KEYS) * epochs + 2
    for h in HISTORY_KEYS:
        got = [r["value"] for r in train if r["metric"] == h]
        want = pct_from_fraction(done["history"][h]) if h in HISTORY_PCT else done["history"][h]
        assert got == want and [r["key"] for r in train if r["metric"] == h] == ["0", "1", "2"]
    (best,) = _rows(t, evaluation="train", metric="best_epoch")
    assert best["value"] == done["best_epoch"] and best["checkpoint"] == "" and best["device"] == "cpu"
    cells = {c["metric"]: c for c in read_cells(out)}
    (pgd,) = _rows(t, evaluation="pgd", metric="acc")
    c = cells["pgd"]
    assert pgd["value"] == pct_from_fraction(c["values"]["acc"]) and pgd["value"] / 100 == c["values"]["acc"]
    assert (pgd["checkpoint"], pgd["version"], pgd["settings_hash"], pgd["device_seconds"], pgd["arch_id"]) == (
        "best", 1, c["preset_hash"], c["device_seconds"], arch_id(ARCH))
    assert (pgd["dataset"], pgd["space"], pgd["arch"], pgd["seed"]) == ("cifar10", "wrn", ARCH, 0)
    assert [r["metric"] for r in _rows(t, evaluation="pgd")] == ["acc", "loss", "stable", "lip"]
    assert [r["metric"] for r in _rows(t, evaluation="aa")] == ["acc", "loss"]  # no stable/lip for AA
    (params,) = _rows(t, evaluation="complexity", metric="params")
    assert params["value"] == cells["complexity"]["values"]["params"]
    assert _rows(t, evaluation="corruptions") == []  # CIFAR-10-C not present on this machine


def test_exporter_writes_the_runs_record_byte_for_byte(run, tmp_path):
    _, out = run
    assert write_long_jsonl(run_rows(out), tmp_path / "cifar10.jsonl") == 1
    assert (tmp_path / "cifar10.jsonl").read_bytes() == (out / "record.jsonl").read_bytes()


def test_store_shards_and_upserts(tmp_path):
    recs = synthetic_records(3, seed=2, epochs=4)
    recs[0]["arch_id"], recs[1]["arch_id"], recs[2]["arch_id"] = 5, 1030, 2000  # three shards
    t = records_to_long(recs)
    write_results(t, tmp_path)
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["part-000.parquet", "part-001.parquet"]
    back = read_results(tmp_path)
    assert back.num_rows == t.num_rows and sorted(set(back.column("arch_id").to_pylist())) == [5, 1030, 2000]
    recs[1]["test_best"][0]["Linf_pgd_acc"] = 12.5
    write_results(records_to_long([recs[1]]), tmp_path)  # replaces arch 1030's rows, keeps the others
    back = read_results(tmp_path)
    assert back.num_rows == t.num_rows
    assert [r["value"] for r in _rows(back, arch_id=1030, evaluation="pgd", metric="acc")] == [12.5]


def test_filter_rows():
    t = records_to_long(synthetic_records(2, seed=3, epochs=2))
    ids = sorted(set(t.column("arch_id").to_pylist()))
    f = filter_rows(t, arch=[ids[0]], evaluation=["fgsm", "aa"], metric=["acc"])
    assert [(r["arch_id"], r["evaluation"], r["metric"]) for r in f.to_pylist()] == [
        (ids[0], "fgsm", "acc"), (ids[0], "aa", "acc")]


def test_cli_run_dir(run, capsys):
    _, out = run
    assert main(["results", str(out), "--evaluation", "pgd", "--metric", "acc", "--json"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    cell = next(c for c in read_cells(out) if c["metric"] == "pgd")
    assert json.loads(line) == {"dataset": "cifar10", "space": "wrn", "arch_id": arch_id(ARCH), "checkpoint": "best",
                                "evaluation": "pgd", "version": 1, "metric": "acc", "key": "",
                                "value": pct_from_fraction(cell["values"]["acc"])}
    assert main(["results", str(out), "--evaluation", "train", "--metric", "train_loss", "--arch", ARCH]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "dataset\tspace\tarch_id\tcheckpoint\tevaluation\tversion\tmetric\tkey\tvalue"
    done = json.loads((out / "train_done.json").read_text())
    assert lines[1:] == [f"cifar10\twrn\t{arch_id(ARCH)}\t\ttrain\t-\ttrain_loss\t{e}\t{v!r}"
                         for e, v in enumerate(done["history"]["train_loss"])]


def test_cli_data_file_and_errors(tmp_path, capsys):
    recs = synthetic_records(3, seed=4, epochs=2)
    write_jsonl(tmp_path / "c.jsonl", recs)
    aid = recs[1]["arch_id"]
    assert main(["results", "--data", str(tmp_path / "c.jsonl"), "--arch", str(aid), "--evaluation", "corruptions",
                 "--metric", "acc", "--json"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    corr = recs[1]["test_best"][0]["corruptions"]
    assert [(r["key"], r["value"]) for r in rows] == [(f"{n}/{s}", c["acc"]) for n, sev in corr.items()
                                                      for s, c in sev.items()]
    assert len(rows) == 95 and {r["checkpoint"] for r in rows} == {"best"} and rows[0]["version"] is None
    assert main(["results", str(tmp_path), "--data", str(tmp_path / "c.jsonl")]) == 2
    assert capsys.readouterr().err == "nares: error: give exactly one of RUN_DIR, --release V or --data FILE\n"
    assert main(["results", "--data", str(tmp_path / "c.jsonl"), "--arch", "4-8-4-8-4-9"]) == 2
    assert capsys.readouterr().err == "nares: error: width3=9 is not one of [8, 10, 12, 14, 16]\n"
    assert main(["results", str(tmp_path)]) == 2
    assert "no finished training run" in capsys.readouterr().err


def _release(folder, recs, long=None) -> None:
    """A local release folder checked by fetch_release: files, SHA256SUMS, RELEASE.json."""
    folder.mkdir(parents=True)
    write_jsonl(folder / "cifar10.jsonl", recs)
    if long is not None:
        write_results(long, folder / "tables")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    (folder / "SHA256SUMS").write_text("".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  "
                                               f"{p.relative_to(folder).as_posix()}\n" for p in files))
    sums = hashlib.sha256((folder / "SHA256SUMS").read_bytes()).hexdigest()
    (folder / "RELEASE.json").write_text(json.dumps({"version": folder.name, "sha256sums_sha256": sums}))


def test_cli_release(tmp_path, monkeypatch, capsys):
    """A local release read through its long table (tables/results/), or its cifar10.jsonl when it has none."""
    recs = synthetic_records(2, seed=5, epochs=2)
    _release(tmp_path / "releases" / "v9.0.0", recs)
    monkeypatch.setenv("NARES_RELEASES", str(tmp_path / "releases"))
    long = records_to_long(recs)
    long = long.set_column(long.column_names.index("value"), "value",
                           pa.array(np.arange(long.num_rows, dtype=np.float64)))
    _release(tmp_path / "releases" / "v9.0.1", recs, long)
    assert main(["results", "--release", "v9.0.1", "--arch", str(recs[0]["arch_id"]), "--evaluation", "aa",
                 "--json"]) == 0
    (row,) = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    want = next(i for i, r in enumerate(long.to_pylist()) if r["arch_id"] == recs[0]["arch_id"]
                and r["evaluation"] == "aa")
    assert row["value"] == float(want)  # the long table's value, not the jsonl's
    assert main(["results", "--release", "v9.0.0", "--evaluation", "complexity", "--json"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    want = [(r["arch_id"], m, round(r[k] * 1e6)) for r in sorted(recs, key=lambda r: r["arch_id"])
            for m, k in (("params", "Params"), ("macs", "MACs"))]
    assert [(r["arch_id"], r["metric"], r["value"]) for r in rows] == want
    assert np.all([float(r["value"]).is_integer() for r in rows])


def test_jsonl_reader_matches_records_to_long(tmp_path):
    recs = synthetic_records(4, seed=6, epochs=3)
    write_jsonl(tmp_path / "c.jsonl", recs)
    assert read_jsonl_long(tmp_path / "c.jsonl").equals(records_to_long(recs))
