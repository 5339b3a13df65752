"""`nares report` on a synthetic release: every figure written, numbers consistent with the data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from factory.cli import main
from nares.analysis import pareto_ranks
from nares.records import write_jsonl
from nares.spaces.wrn import all_archs
from nares.synthetic import synthetic_records

pytestmark = pytest.mark.slow

FIGURES = ("accuracy_vs_complexity.png", "coordinate_distributions.png", "stable_and_lipschitz.png",
           "design_ratios.png", "pareto_rank.png", "pca_best_worst.png", "val_vs_test.png")


def test_report_from_a_data_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NARES_CACHE_DIR", str(tmp_path / "cache"))
    records = synthetic_records(archs=all_archs()[::61], epochs=5, seed=2)
    data = tmp_path / "cifar10.jsonl"
    write_jsonl(data, records)
    assert main(["report", "--data", str(data), "--out", str(tmp_path / "rep")]) == 0
    assert "index.html" in capsys.readouterr().out
    out = tmp_path / "rep"
    page = (out / "index.html").read_text()
    for name in FIGURES:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f'src="{name}"' in page
    stats = json.loads((out / "report.json").read_text())
    assert stats["architectures"] == len(records)
    acc = np.array([r["test_best"][0]["Linf_pgd_acc"] for r in records])
    macs = np.array([r["MACs"] for r in records])
    ranks = pareto_ranks(acc, macs)
    front = {str(a) for a, r in zip((rec["arch"] for rec in records), ranks, strict=True) if r == 0}
    assert len(front) == stats["pareto"]["front_size"] == len(stats["pareto"]["front"])
    assert stats["pareto"]["best_set"] == int((ranks < 16).sum())
    val = [r["train"][0]["pgd"][r["train"][0]["best_epoch"]] for r in records]
    assert stats["VAL_PGD_ACC~TEST_PGD_ACC"]["pearson"] == pytest.approx(np.corrcoef(val, acc)[0, 1])
    assert stats["VAL_PGD_ACC~TEST_PGD_ACC"]["pearson"] > 0.8  # planted: test PGD = val PGD + small terms
    assert set(stats["pca"]["components"]["PC1"]) == {"D1", "W1", "D2", "W2", "D3", "W3"}
