"""The published NAS variant (PROTOCOL §9): the official settings, the tie rule, BANANAS' budget overshoot
and predictor, and `nares nas run --variant published` with the published algorithm names."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from factory.cli import main
from nares.nas import published
from nares.nas.published_mlp import MLPEnsemble
from nares.nas.runner import run_many, settings_for
from nares.records import write_jsonl
from nares.spaces.wrn import N_ARCHS, all_archs
from nares.synthetic import VAL_NOISE_BOUND, planted_val_pgd, synthetic_records


@pytest.fixture(scope="module")
def planted() -> np.ndarray:
    rng = np.random.default_rng(11)
    return 100 * (np.array([planted_val_pgd(a) for a in all_archs()])
                  + rng.uniform(-VAL_NOISE_BOUND, VAL_NOISE_BOUND, N_ARCHS))


def test_published_settings_are_the_official_configs():
    s = published.PUBLISHED_SETTINGS
    assert s["local_search"] == {"n_init": 10, "query_full_nbhd": False}
    assert s["regularized_evolution"] == {"population": 30, "tournament": 10, "mutation_rate": 1.0}
    b = s["bananas"]
    assert (b["ensemble"], b["layers"], b["width"], b["epochs"], b["batch_size"], b["lr"], b["l1_reg"]) == (5, 20, 32, 500, 32, 1e-3, 0.2)
    assert (b["n_init"], b["candidates"], b["parents"] * b["patience_factor"], b["proposals"]) == (10, 100, 50, 10)
    assert settings_for("evolution", {}, "published") == s["regularized_evolution"]


def test_ties_report_the_latest_sampled_architecture():
    run = published.run_one("random_search", np.zeros(N_ARCHS), 25, seed=0, settings={})
    assert run.queries == 25 and run.best_code == run.codes[-1]
    values = np.zeros(N_ARCHS)
    values[run.codes[3]] = values[run.codes[9]] = 1.0
    again = published.run_one("random_search", values, 25, seed=0, settings={})
    assert again.codes == run.codes and again.best_code == run.codes[9]


def test_local_search_is_a_random_walk_past_the_budget(planted):
    """Values are distinct, so every neighbour queried differs from the current one and the walk moves to
    it, better or worse: after the 10 initial architectures each query neighbours the previous one."""
    run = published.run_one("local_search", planted, 100, seed=5, settings=published.PUBLISHED_SETTINGS["local_search"])
    codes, vals = run.codes, [planted[c] for c in run.codes]
    assert run.queries > 100
    walk = codes[10:]
    from nares.spaces.wrn import SPACE

    nbrs = SPACE.neighbour_table()
    steps = [b in nbrs[a] for a, b in itertools.pairwise(walk)]
    assert np.mean(steps) > 0.9  # broken only at restarts
    worse = [v1 < v0 for v0, v1, ok in zip(vals[10:], vals[11:], steps, strict=False) if ok]
    assert 0.2 < np.mean(worse) < 0.9  # it also moves to worse neighbours


def test_published_bananas_overshoots_by_less_than_a_round(planted):
    settings = dict(published.PUBLISHED_SETTINGS["bananas"], epochs=30)  # fewer epochs: the calls matter here
    run = published.run_one("bananas", planted, 40, seed=2, settings=settings)
    assert 40 <= run.queries < 50 and len(run.trajectory) == run.queries
    assert planted[run.best_code] == max(planted[c] for c in run.codes)


def test_published_predictor_shape_init_and_training():
    m = MLPEnsemble(30, 5, 20, 32, seed=0)
    assert [w.shape for w in m.w] == [(5, 30, 32)] + [(5, 32, 32)] * 19 + [(5, 32, 1)]
    assert all(np.abs(w).max() <= np.sqrt(6 / (w.shape[1] + w.shape[2])) for w in m.w)
    assert all((b == 0).all() for b in m.b)
    rng = np.random.default_rng(3)
    x = np.zeros((64, 30), dtype=np.float32)
    x[np.arange(64)[:, None], np.arange(6)[None, :] * 5 + rng.integers(0, 5, (64, 6))] = 1
    y = (x @ rng.uniform(0, 2, 30) + 48).astype(np.float32)
    before = np.abs(m.predict(x) - y).mean()
    m.fit(x, y, epochs=150, batch_size=32, lr=1e-3, l1_reg=0.2)
    after = np.abs(m.predict(x) - y).mean(axis=1)
    assert after.max() < 0.2 * before and m.predict(x).shape == (5, 64)


def test_run_many_published_in_parallel_equals_serial(planted):
    kw = dict(runs=2, budget=60, seed=4, settings=published.PUBLISHED_SETTINGS["regularized_evolution"], variant="published")
    a = run_many("regularized_evolution", planted, workers=1, **kw)
    b = run_many("evolution", planted, workers=2, **kw)
    assert [r.best_code for r in a] == [r.best_code for r in b] and a[0].variant == "published"


@pytest.mark.slow
def test_cli_published_variant_and_names(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NARES_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "cifar10.jsonl"
    write_jsonl(path, synthetic_records(epochs=2, corruptions=False, seed=1))
    argv = ["nas", "run", "--algo", "regularized_evolution", "local_search", "--runs", "2", "--budget", "60",
            "--workers", "1", "--data", str(path), "--json"]
    assert main([*argv, "--variant", "published"]) == 0
    report = json.loads(capsys.readouterr().out)
    rows = {r["algorithm"]: r for r in report["rows"]}
    assert report["variant"] == "published" and set(rows) == {"regularized_evolution", "local_search"}
    assert rows["local_search"]["queries"]["mean"] > 60 and rows["regularized_evolution"]["queries"]["max"] == 60
    assert main(argv) == 0  # default variant: exactly the budget
    rows = {r["algorithm"]: r for r in json.loads(capsys.readouterr().out)["rows"]}
    assert rows["local_search"]["queries"] == {"mean": 60.0, "std": 0.0, "max": 60}
    assert main(["nas", "run", "--algo", "evolution", "--runs", "1", "--budget", "40", "--workers", "1",
                 "--variant", "published", "--data", str(path)]) == 0
    assert "regularized_evolution (published)" in capsys.readouterr().out
