"""`nares nas run` on a full 15,625-row synthetic jsonl: the published table and its numbers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from factory.cli import main
from nares.api import Metric, open_dataset
from nares.config import load_preset
from nares.errors import NaresError
from nares.nas.algorithms import run_one
from nares.nas.runner import TABLE_METRICS, objective_by_code, settings_for
from nares.records import write_jsonl
from nares.spaces.wrn import SPACE
from nares.synthetic import PLANTED_OPTIMUM, synthetic_records

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NARES_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        path = tmp_path_factory.mktemp("full") / "cifar10.jsonl"
        write_jsonl(path, synthetic_records(epochs=2, corruptions=False, seed=1))
        yield path, open_dataset(path)


def test_nas_run_table_matches_independent_runs(full, capsys):
    path, ds = full
    argv = ["nas", "run", "--algo", "random_search", "local_search", "--runs", "3", "--budget", "500",
            "--seed", "10", "--workers", "1", "--data", str(path), "--json"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["objective"] == "VAL_PGD_ACC" and report["budget"] == 500 and report["runs"] == 3
    rows = {r["algorithm"]: r for r in report["rows"]}
    assert rows["local_search"]["found_optimum"] == 1.0
    assert report["optimum"]["VAL_PGD_ACC"] == ds.metric(PLANTED_OPTIMUM, Metric.VAL_PGD_ACC)
    assert report["optimum"]["TEST_AA_ACC"] == ds.values(Metric.TEST_AA_ACC).max()
    values = objective_by_code(ds, "VAL_PGD_ACC")
    best = [SPACE.arch_of_code(run_one("random_search", values, 500, s, {}).best_code) for s in (10, 11, 12)]
    for m in TABLE_METRICS:
        v = np.array([ds.metric(a, m) for a in best])
        assert rows["random_search"]["metrics"][m]["mean"] == pytest.approx(v.mean())
        assert rows["random_search"]["metrics"][m]["std"] == pytest.approx(v.std())
    traj = rows["local_search"]["mean_trajectory"]
    assert len(traj) == 500 and traj[-1] == pytest.approx(report["optimum"]["VAL_PGD_ACC"], abs=1e-4)


def test_nas_run_text_table_and_errors(full, capsys):
    path, ds = full
    assert main(["nas", "run", "--algo", "evolution", "--runs", "2", "--budget", "40", "--workers", "1",
                 "--data", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("NAS benchmark: objective VAL_PGD_ACC (maximised), budget 40 queries, 2 runs")
    assert lines[1].split()[:3] == ["algorithm", "VAL_CLEAN_ACC", "VAL_PGD_ACC"]
    assert lines[2].startswith("regularized_evolution") and " ± " in lines[2]
    assert lines[3].startswith("optimum") and f"{ds.optimum('VAL_PGD_ACC')[1]:.2f}" in lines[3]
    with pytest.raises(NaresError, match="test metric"):
        objective_by_code(ds, "TEST_PGD_ACC")
    assert settings_for("bananas", load_preset("full")["nas"])["candidates"] == 100
