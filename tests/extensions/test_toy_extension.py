"""A new search space from the test folder only (tests/extensions/toy_plugins.py, no edit under nares/):
registered, loaded by name in another process, and run through the parts of the factory that take a space."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow.csv as pacsv
import pytest

from nares.errors import ArchError
from nares.models.count import count_module
from nares.spaces import get_space, space_for
from nares.sweep.selection import SweepError, order_jobs, select_archs
from tests.s3_fixtures import s3_server_fixture, s3_store_fixture  # noqa: F401  (fixtures)

pytestmark = pytest.mark.extension
REPO = Path(__file__).resolve().parents[2]
PLUGIN = "tests.extensions.toy_plugins"


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setenv("NARES_PLUGINS", PLUGIN)
    return get_space("toy2")


def test_the_toy_space_is_found_by_name_and_owns_its_ids(toy):
    assert toy is space_for({"space": {"name": "toy2"}}) and toy.size == 4
    # ids ascend in MACs = 27·1024·c1 + 2304·c1·c2 + 11·c2, by hand: 147,500 < 184,408 < 294,956 < 368,728
    assert [toy.complexity(a, 1)[1] for a in map(toy.parse, ("4-4", "4-8", "8-4", "8-8"))] == [
        147_500, 184_408, 294_956, 368_728]
    assert [(i, toy.format(a)) for i, a in toy.index()] == [(1, "4-4"), (2, "4-8"), (3, "8-4"), (4, "8-8")]
    assert sorted(toy.format(a) for a in toy.neighbours(toy.parse("4-8"))) == ["4-4", "8-8"]
    assert toy.neighbour_table().shape == (4, 2) and toy.encoding_table().tolist()[3] == [1.0, 1.0]
    with pytest.raises(ArchError, match=r"widths must be in \[4, 8\]"):
        toy.parse("4-6")


@pytest.mark.parametrize("scale", [1, 3])
def test_closed_form_complexity_equals_a_walk_of_the_real_module(toy, scale):
    for arch in toy.enumerate():
        assert toy.complexity(arch, scale) == count_module(toy.build_model(arch, scale))


def test_sweep_selection_of_the_toy_space(toy):
    assert [toy.format(a) for _, a in select_archs("list:8-8,4-4", toy)] == ["4-4", "8-8"]
    assert [i for i, _ in order_jobs(select_archs("all", toy), "largest_first", 1, space=toy)] == [4, 3, 2, 1]
    assert [i for i, _ in order_jobs(select_archs("all", toy), "smallest_first", 1, space=toy)] == [1, 2, 3, 4]
    with pytest.raises(SweepError, match="'5' is outside 1..4"):
        select_archs("ids:5", toy)


def test_cli_exports_the_plugin_space_in_another_process(tmp_path):
    out = tmp_path / "toy.csv"
    env = {**os.environ, "NARES_PLUGINS": PLUGIN, "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-m", "factory.cli", "space", "export", "--space", "toy2", "--out", str(out)],
                       capture_output=True, text=True, env=env, cwd=tmp_path, check=True)
    assert "wrote 4 architectures" in r.stdout
    t = pacsv.read_csv(out).to_pydict()
    assert list(t) == ["arch_id", "arch", "w1", "w2", "params", "macs"]
    assert t["arch"] == ["4-4", "4-8", "8-4", "8-8"] and t["params"][0] == 27 * 4 + 9 * 16 + 10 * 4 + 10
    bad = subprocess.run([sys.executable, "-m", "factory.cli", "space", "export", "--space", "toy3", "--out",
                          str(out)], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert bad.returncode == 2 and "unknown search space 'toy3'; known: nb201, robnet, toy2, wrn" in bad.stderr
    assert bad.stderr.strip().count("\n") == 0


def test_the_toy_evaluation_on_a_toy_model(toy):
    import torch

    from nares.config import load_preset
    from nares.errors import ConfigError
    from nares.evaluations import get_evaluation
    from nares.evaluations.base import EvalContext

    ev = get_evaluation("gauss")
    cfg = load_preset("tiny")
    torch.manual_seed(0)
    model = toy.build_model(toy.parse("8-8"), 1).eval()
    x = torch.rand(200, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = model(x).argmax(1)  # the clean predictions: clean accuracy 100 %
    values = ev.compute(EvalContext(cfg=cfg, model=model, x=x, y=y, arch=toy.parse("8-8"), space=toy))
    g = torch.Generator().manual_seed(0)
    expected = []
    with torch.no_grad():
        for sigma in (0.05, 0.1):
            pred = model((x + sigma * torch.randn(x.shape, generator=g)).clamp(0, 1)).argmax(1)
            expected.append(("acc", repr(sigma), round(100 * float((pred == y).float().mean()), 2)))
    assert [(v.metric, v.key, round(v.value, 2)) for v in values] == expected
    assert ev.cost(ev.settings(cfg), 300) == 200  # two forward passes over 300 images, 1/3 each
    bad = {**cfg, "eval": {**cfg["eval"], "gauss": {"sigmas": [0.1, 0.05]}}}
    with pytest.raises(ConfigError, match="eval.gauss.sigmas"):
        ev.settings(bad)


# -- train → evaluate → NAS on the toy space, through the factory's own trainer, evaluator and searches ----------
MICRO_TOY = {
    "space": {"name": "toy2"},
    "model": {"width_base": 1},
    "data": {"train": "cifar10-subset", "train_limit": 128, "val": "holdout", "val_holdout": 64,
             "test": "cifar10-subset", "test_limit": 64, "corruption_limit": 4},
    "train": {"epochs": 1, "batch_size": 64, "lr_milestones": [], "precision": "fp32", "deterministic": True,
              "channels_last": False, "attack": {"steps": 1, "step_255": 8}},
    "checkpoints": {"save_epochs": [0, 0]},
    "validation": {"batch_size": 64, "pgd": {"steps": 1, "step_255": 8, "eps_255": 8, "init": "uniform"},
                   "cw": {"steps": 1, "step_255": 8, "eps_255": 8, "init": "uniform", "kappa": 0}},
    "eval": {"batch_size": 64, "precision": "fp32", "suites": {"toy": ["clean", "complexity", "gauss"]}},
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_dir):
    """Every toy architecture trained for one epoch under a preset naming the toy space."""
    import torch
    import yaml

    from nares.config import REPO_ROOT, load_preset
    from nares.data import load_splits
    from nares.train import train_arch

    mp = pytest.MonkeyPatch()
    mp.setenv("NARES_PLUGINS", PLUGIN)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("toy")
    doc = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    doc["presets"]["toy"] = MICRO_TOY
    (root / "params.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    mp.setenv("NARES_PARAMS", str(root / "params.yaml"))  # every later reader (release, API, CLI) finds the preset
    cfg = load_preset("toy")
    splits = load_splits(cfg["data"], root=data_dir, seed=0)
    space = get_space("toy2")
    runs = {}
    for aid, arch in space.index():
        runs[aid] = root / f"arch_{aid}"
        train_arch(space.format(arch), cfg, runs[aid], device="cpu", splits=splits, progress=False)
    yield cfg, splits, runs
    torch.set_num_threads(threads)
    mp.undo()


@pytest.mark.slow
def test_train_evaluate_and_search_the_toy_space(trained):
    import json

    import numpy as np

    from nares.evaluate.runner import evaluate_run, load_model
    from nares.evaluations import get_evaluation
    from nares.evaluations.base import EvalContext
    from nares.nas.algorithms import run_one
    from nares.train.checkpoints import checkpoint_path
    from nares.train.validate import as_tensors

    cfg, splits, runs = trained
    toy = get_space("toy2")
    clean = np.empty(toy.size)
    for aid, out in runs.items():
        arch = toy.index().arch_of(aid)
        done = json.loads((out / "train_done.json").read_text())
        assert (done["space"], done["arch"], len(done["history"]["cw"])) == ("toy2", toy.format(arch), 1)
        res = evaluate_run(out, cfg, device="cpu", splits=splits, metrics=["clean", "complexity"])
        assert res["record"] is None  # the published NARes record is the WRN space's layout only
        cells = [json.loads(line) for line in (out / "evaluations.jsonl").read_text().splitlines()]
        assert {(c["arch"], c["arch_id"]) for c in cells} == {(toy.format(arch), aid)}
        assert (res["cells"]["complexity"]["params"], res["cells"]["complexity"]["macs"]) == toy.complexity(arch, 1)
        clean[toy.code_of(arch)] = res["cells"]["clean"]["acc"]
        # the toy evaluation on the trained checkpoint, its model rebuilt from the checkpoint's space
        model = load_model(checkpoint_path(out, "best"), torch_device(), channels_last=False)
        x, y = as_tensors(splits.test, torch_device())
        values = get_evaluation("gauss").compute(EvalContext(cfg=cfg, model=model, x=x, y=y, arch=arch, space=toy))
        assert [(v.metric, v.key) for v in values] == [("acc", "0.05"), ("acc", "0.1")]
        assert all(0 <= v.value <= 100 for v in values)
    assert clean.min() >= 0 and clean.max() <= 1
    # the long results table of the four runs: every row names the toy space, its canonical string and id
    from nares.results import filter_rows
    from nares.results.build import concat
    from nares.results.run import run_rows
    from nares.results.store import read_results, write_results

    root = next(iter(runs.values())).parent / "tables"
    write_results(concat([run_rows(out) for out in runs.values()]), root)
    table = read_results(root)
    rows = filter_rows(table, evaluation=["complexity"]).to_pylist()
    assert {(r["space"], r["arch_id"], r["arch"]) for r in rows} == {("toy2", i, toy.format(a)) for i, a in toy.index()}
    assert {(r["arch_id"], r["metric"]): r["value"] for r in rows} == {
        (i, m): float(v) for i, a in toy.index() for m, v in zip(("params", "macs"), toy.complexity(a, 1), strict=True)}
    assert {r["evaluation"] for r in table.to_pylist()} == {"train", "clean", "complexity"}
    # the generic report of the toy space from the long table: clean accuracy against exact MACs
    from nares.analysis import pareto_ranks
    from nares.analysis.long_report import build_results_report

    page = build_results_report(table, toy, root.parent / "report", evaluation="clean", metric="acc")
    stats = json.loads((page.parent / "report.json").read_text())
    acc = {r["arch_id"]: r["value"] for r in filter_rows(table, evaluation=["clean"], metric=["acc"]).to_pylist()}
    ids = sorted(acc)
    ranks = pareto_ranks(np.array([acc[i] for i in ids]), np.array([toy.complexity(toy.index().arch_of(i), 1)[1]
                                                                    for i in ids], dtype=float))
    assert stats["space"] == "toy2" and stats["architectures"] == 4
    assert set(stats["pareto"]["front"]) == {toy.format(toy.index().arch_of(i)) for i, r in zip(ids, ranks, strict=True)
                                             if r == 0}
    for name in ("accuracy_vs_complexity.png", "coordinate_distributions.png", "pareto_rank.png"):
        assert (page.parent / name).read_bytes()[:4] == b"\x89PNG" and f'src="{name}"' in page.read_text()
    # the CLI of another process finds the toy space by name and prints the run's rows
    out4 = runs[4]
    env = {**os.environ, "NARES_PLUGINS": PLUGIN, "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-m", "factory.cli", "results", str(out4), "--evaluation", "complexity",
                        "--arch", "8-8", "--json"], capture_output=True, text=True, env=env, check=True)
    printed = [json.loads(line) for line in r.stdout.splitlines()]
    assert {(p["space"], p["arch_id"], p["metric"], p["value"]) for p in printed} == {
        ("toy2", 4, "params", float(toy.complexity(toy.parse("8-8"), 1)[0])),
        ("toy2", 4, "macs", float(toy.complexity(toy.parse("8-8"), 1)[1]))}
    o = run_one("random_search", clean, toy.size, seed=0, settings={}, space=toy)  # the whole budget: exact
    assert clean[o.best_code] == clean.max() and sorted(o.seen) == list(range(toy.size))


def torch_device():
    import torch

    return torch.device("cpu")


# -- tables → validate → release → query → NAS → report, from the toy suite, through the real S3 store ----------
@pytest.mark.slow
@pytest.mark.services
def test_the_toy_space_is_released_queried_searched_and_reported(trained, s3_store, tmp_path):
    import json

    import numpy as np

    from nares.api import open_dataset
    from nares.evaluate.runner import evaluate_run
    from nares.evaluations import suite
    from nares.nas.algorithms import run_one
    from nares.release import publish
    from nares.store.ingest import ingest_run

    cfg, splits, runs = trained
    toy = get_space("toy2")
    assert suite(cfg, "toy") == ["clean", "complexity", "gauss"]
    tables, cells = tmp_path / "tables", {}
    for aid, out in runs.items():
        cells[aid] = evaluate_run(out, cfg, device="cpu", splits=splits, metrics=suite(cfg, "toy"))["cells"]
        ingest_run(s3_store, tables, out, arch_id=aid)
    # a release missing the toy evaluation of one architecture is refused, naming what is missing
    import shutil

    import pyarrow as pa

    from nares.release import ReleaseRefused
    from nares.results import filter_rows
    from nares.results.store import read_results, write_results

    bad = tmp_path / "bad-tables"
    shutil.copytree(tables, bad)
    rows = filter_rows(read_results(bad), arch=[2])
    write_results(rows.filter(pa.array([e != "gauss" for e in rows.column("evaluation").to_pylist()])), bad)
    with pytest.raises(ReleaseRefused, match=r"missing_evaluations.* failed for 1 rows, e.g. arch_id 2 \(values .gauss.\)"):
        publish("toy0", tables_root=bad, store=s3_store, preset="toy", suite="toy", expected_archs=[1, 2, 3, 4],
                dest_root=tmp_path / "releases", dvc_repo=None)
    env = {**os.environ, "NARES_PLUGINS": PLUGIN, "PYTHONPATH": str(REPO)}
    for folder, rc, said in ((bad, 1, "missing_evaluations"), (tables, 0, "passed")):  # the gate alone, from the CLI
        r = subprocess.run([sys.executable, "-m", "factory.cli", "release", "validate", "--tables", str(folder),
                            "--preset", "toy", "--suite", "toy", "--expected", "1-4", "--verify-checkpoints", "none"],
                           capture_output=True, text=True, env=env)
        assert r.returncode == rc and said in r.stdout, r.stdout + r.stderr
    info = publish("toy1", tables_root=tables, store=s3_store, preset="toy", suite="toy", expected_archs=[1, 2, 3, 4],
                   dest_root=tmp_path / "releases", dvc_repo=None)
    assert info["space"] == "toy2" and info["n_archs"] == 4 and info["validation"]["success"]
    folder = tmp_path / "releases" / "toy1"
    card = (folder / "DATASET_CARD.md").read_text()
    assert "toy2" in card and "gauss" in card
    from nares.errors import NaresError

    # query: every value of an architecture, the toy evaluation's per σ, equal to what the evaluator computed
    ds = open_dataset(folder)
    q = ds.query("8-8")
    assert q["arch_id"] == 4 and q["representative_id"] == 4
    assert q["values"]["gauss/acc[0.05]"] == pytest.approx(100 * cells[4]["gauss"]["0.05"]["acc"])
    assert q["values"]["complexity/params"] == toy.complexity(toy.parse("8-8"), 1)[0]
    with pytest.raises(NaresError, match="4-6"):
        ds.query("4-6")
    r = subprocess.run([sys.executable, "-m", "factory.cli", "query", "4-8", "--data", str(folder)],
                       capture_output=True, text=True, env=env, check=True)
    assert "4-8" in r.stdout and "gauss/acc[0.1]" in r.stdout
    r = subprocess.run([sys.executable, "-m", "factory.cli", "results", "--release", "toy1", "--arch", "8-4",
                        "--evaluation", "gauss", "--json"], capture_output=True, text=True, check=True,
                       env={**env, "NARES_RELEASES": str(tmp_path / "releases")})
    assert {(row["arch_id"], row["key"]) for row in map(json.loads, r.stdout.splitlines())} == {(3, "0.05"), (3, "0.1")}
    # NAS over the release: the objective of every architecture, a search whose budget covers the space is exact
    values = ds.objective_values("VAL_PGD_ACC")
    o = run_one("regularized_evolution", values, toy.size, seed=0, settings={"population": 2, "tournament": 2},
                space=toy)
    assert values[o.best_code] == np.nanmax(values)
    r = subprocess.run([sys.executable, "-m", "factory.cli", "nas", "run", "--data", str(folder), "--preset", "toy",
                        "--algo", "random_search", "--runs", "2", "--budget", "4", "--json", "--workers", "1"],
                       capture_output=True, text=True, env=env, check=True)
    report = json.loads(r.stdout)
    assert report["rows"][0]["algorithm"] == "random_search"
    # the report of the release: the generic long-table report of the toy space
    r = subprocess.run([sys.executable, "-m", "factory.cli", "report", "--data", str(folder), "--out",
                        str(tmp_path / "report")], capture_output=True, text=True, env=env, check=True)
    stats = json.loads((tmp_path / "report" / "report.json").read_text())
    assert stats["space"] == "toy2" and stats["architectures"] == 4
