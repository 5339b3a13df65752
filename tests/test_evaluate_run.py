"""`evaluate_run` on a tiny trained run: cells, the ledger's reuse rule, CIFAR-10-C cells, the published record."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nares.attacks.suite import evaluate_attacks
from nares.data import load_splits
from nares.evaluate import evaluate_run
from nares.evaluate.ledger import EVAL_FILE, read_cells
from nares.evaluate.runner import load_model
from nares.records import read_jsonl, validate_record
from nares.spaces.wrn import arch_id, macs, params
from nares.train import train_arch
from nares.train.checkpoints import RunError, checkpoint_path
from tests.test_train_resume import ARCH, micro_cfg

pytestmark = pytest.mark.slow  # trains a tiny model once (~25 s on 2 busy cores)


@pytest.fixture(scope="module")
def run(tmp_path_factory, data_dir):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    cfg = micro_cfg()
    out = tmp_path_factory.mktemp("evalrun")
    splits = load_splits(cfg["data"], root=data_dir, seed=0)
    train_arch(ARCH, cfg, out, device="cpu", splits=splits, progress=False)
    yield cfg, out, splits
    torch.set_num_threads(before)


def test_all_cells_then_record_in_published_layout(run):
    cfg, out, splits = run
    res = evaluate_run(out, cfg, device="cpu", splits=splits)
    assert res["computed"] == ["clean", "fgsm", "pgd", "cw", "aa", "complexity"]
    assert res["skipped"] == {"corruptions": "CIFAR-10-C files are not present"}
    cells = res["cells"]
    n = cfg["data"]["test_limit"]
    for m in ("clean", "fgsm", "pgd", "cw", "aa"):
        assert cells[m]["n"] == n and 0 <= cells[m]["acc"] <= 1
        assert round(cells[m]["acc"] * n) == pytest.approx(cells[m]["acc"] * n, abs=1e-9)  # a count of points
    assert cells["pgd"]["acc"] <= cells["clean"]["acc"] and cells["aa"]["acc"] <= cells["clean"]["acc"]
    assert cells["pgd"]["lip"] > 0 and cells["cw"]["lip"] > 0 and 0 <= cells["fgsm"]["stable"] <= 1
    # the clean cell is the best checkpoint's plain accuracy on the test split
    model = load_model(checkpoint_path(out, "best"), torch.device("cpu"), channels_last=False)
    with torch.no_grad():
        pred = model(splits.test.float01()).argmax(1)
    assert cells["clean"]["acc"] == (pred == splits.test.y).float().mean().item()

    rec = read_jsonl(out / "record.jsonl")
    assert len(rec) == 1 and rec[0] == res["record"]
    rec = rec[0]
    validate_record(rec)
    done = json.loads((out / "train_done.json").read_text())
    assert rec["arch_id"] == arch_id(ARCH) and rec["arch"] == {"D1": 4, "W1": 8, "D2": 4, "W2": 8, "D3": 4, "W3": 8}
    assert rec["Params"] == params(ARCH, width_base=1) / 1e6 and rec["MACs"] == macs(ARCH, width_base=1) / 1e6
    (train,), (test,) = rec["train"], rec["test_best"]
    assert train["best_epoch"] == done["best_epoch"] and train["seed"] == 0 and train["gpu_type"] == "cpu"
    assert train["cw"] == pytest.approx([100 * v for v in done["history"]["cw"]])
    assert train["cw_lip"] == done["history"]["cw_lip"]
    assert test["test_clean_acc"] == pytest.approx(100 * cells["clean"]["acc"])
    assert test["Linf_pgd_lip"] == cells["pgd"]["lip"] and test["corruptions"] == {}


def test_second_call_reuses_cells_and_version_bump_recomputes_one(run):
    cfg, out, splits = run
    evaluate_run(out, cfg, device="cpu", splits=splits, metrics=["clean", "pgd", "complexity"])
    n_lines = len(read_cells(out))
    again = evaluate_run(out, cfg, device="cpu", splits=splits, metrics=["clean", "pgd", "complexity"])
    assert again["computed"] == [] and again["reused"] == ["clean", "pgd", "complexity"]
    assert len(read_cells(out)) == n_lines
    bumped = {**cfg, "eval": {**cfg["eval"], "metric_versions": {**cfg["eval"]["metric_versions"], "pgd": 2}}}
    res = evaluate_run(out, bumped, device="cpu", splits=splits, metrics=["clean", "pgd"])
    assert res["computed"] == ["pgd"] and res["reused"] == ["clean"]
    cells = read_cells(out)
    assert len(cells) == n_lines + 1 and cells[-1]["metric_version"] == 2
    assert cells[-1]["values"] == again["cells"]["pgd"]  # same seed, same numbers
    assert {"arch_id", "checkpoint", "metric", "metric_version", "status", "device", "device_seconds", "started_at",
            "finished_at", "code_version", "preset_hash"} <= set(cells[-1])
    assert res["device"] == "cpu" and res["device_seconds"] == cells[-1]["device_seconds"] > 0
    assert not [p for p in out.iterdir() if p.name.startswith(f".{EVAL_FILE}")]


def test_corruption_cells_on_uncorrupted_copies_equal_clean_accuracy(run, data_dir, tmp_path, monkeypatch):
    """A CIFAR-10-C folder whose every cell holds the first k test images unchanged must score their clean accuracy."""
    cfg, out, splits = run
    k = cfg["data"]["corruption_limit"]
    root = tmp_path / "data"
    (root / "cifar10-c").mkdir(parents=True)
    (root / "cifar10").symlink_to(data_dir / "cifar10")
    x = splits.test.x[:k].permute(0, 2, 3, 1).numpy()
    y = splits.test.y[:k].numpy()
    from nares.constants import CORRUPTIONS

    for name in CORRUPTIONS:
        np.save(root / "cifar10-c" / f"{name}.npy", np.concatenate([x] * 5))
    np.save(root / "cifar10-c" / "labels.npy", np.concatenate([y] * 5))
    monkeypatch.setenv("NARES_DATA_DIR", str(root))
    res = evaluate_run(out, cfg, device="cpu", splits=splits, metrics=["corruptions"])
    assert res["computed"] == ["corruptions"]
    corr = res["cells"]["corruptions"]
    model = load_model(checkpoint_path(out, "best"), torch.device("cpu"), channels_last=False)
    clean = evaluate_attacks(model, splits.test.x[:k], splits.test.y[:k], cfg["eval"], names=["clean"], batch_size=64)
    assert list(corr) == list(CORRUPTIONS) and all(list(v) == ["1", "2", "3", "4", "5"] for v in corr.values())
    assert {c["acc"] for sev in corr.values() for c in sev.values()} == {clean["clean"].acc}
    rec = read_jsonl(out / "record.jsonl")[0]
    assert rec["test_best"][0]["corruptions"]["fog"]["3"]["acc"] == pytest.approx(100 * clean["clean"].acc)


def test_unfinished_run_and_unknown_metric_are_clear_errors(run, tmp_path):
    cfg, out, _ = run
    with pytest.raises(RunError, match="no finished training run"):
        evaluate_run(tmp_path, cfg, device="cpu")
    with pytest.raises(RunError, match="unknown metric 'pgd20'"):
        evaluate_run(out, cfg, device="cpu", metrics=["pgd20"])


def test_cpu_evaluation_counts_device_seconds_through_ledger_and_card(run):
    """A CPU run: every cell, the ledger rows and the release card's cost carry non-zero device-seconds on `cpu`."""
    import pyarrow as pa

    from nares.config import load_preset
    from nares.release import _cost, _dataset_card
    from nares.store.ingest import _ledger_rows
    from nares.store.tables import SCHEMAS, records_to_tables

    cfg, out, splits = run
    evaluate_run(out, cfg, device="cpu", splits=splits)  # whatever is still missing
    cells = read_cells(out)
    assert cells and all(c["device"] == "cpu" and c["device_seconds"] > 0 for c in cells)
    assert not any("gpu_seconds" in c or "wall_seconds" in c for c in cells)
    done = json.loads((out / "train_done.json").read_text())
    train = done["phases"]["train"]
    assert train["device"] == "cpu" and train["device_seconds"] > 0
    rec = read_jsonl(out / "record.jsonl")[0]
    tables = records_to_tables([rec])
    ledger = _ledger_rows(out, rec["arch_id"], done)
    tables["ledger"] = pa.Table.from_pylist(ledger, schema=SCHEMAS["ledger"])
    assert all(r["device"] == "cpu" and r["device_seconds"] > 0 for r in ledger)
    assert next(r for r in ledger if r["metric"] == "train")["device_seconds"] == train["device_seconds"]
    cost = _cost(tables)
    eval_seconds = sum(c["device_seconds"] for c in cells)
    assert cost["evaluation"]["device_seconds"] == pytest.approx(eval_seconds) and eval_seconds > 0
    assert cost["evaluation"]["devices"] == ["cpu"] and cost["training"]["devices"] == ["cpu"]
    assert cost["training"]["device_seconds"] == pytest.approx(train["device_seconds"])
    validation = {"success": True, "n_expectations": 1, "id_map": "default"}
    card = _dataset_card("v-test", "micro", load_preset("tiny"), 1, cost, validation, "2025-01-01T00:00:00Z")
    assert f"- Evaluation: {eval_seconds:.6g} device-seconds" in card and "on cpu." in card
    assert f"  - clean: {next(c for c in cells if c['metric'] == 'clean')['device_seconds']:.6g} device-seconds" in card


def test_cells_written_before_device_seconds_count_their_wall_seconds():
    """An evaluations.jsonl cell of the old layout (gpu_seconds 0 on a CPU) is ingested with its wall seconds."""
    from nares.store.ingest import device_seconds

    assert device_seconds({"device": "cpu", "gpu_seconds": 0.0, "wall_seconds": 2.5}) == 2.5
    assert device_seconds({"device": "cpu", "device_seconds": 1.25}) == 1.25
    assert device_seconds({}) is None


NEIGHBOUR_SUITE = ["confusion", "fgsm_eps", "pgd_eps", "wsr", "square", "jacobian", "hessian", "masking"]


def _neighbour_cfg(cfg: dict) -> dict:
    import copy

    cfg = copy.deepcopy(cfg)
    ev = cfg["eval"]
    ev["fgsm_eps"] = {"eps_255": [0.001, 8]}
    ev["pgd_eps"] = {"eps_255": [0.001, 2, 8, 32, 255], "steps": 10, "step_fraction": 0.25, "init": "uniform",
                     "target": "untargeted"}
    ev["wsr"] = {"eps": [0.03, 0.1], "steps": 5, "step_factor": 2.5, "init": "uniform"}
    ev["square"] = {"n_queries": 30, "p_init": 0.8, "n_restarts": 1, "resc_schedule": False, "limit": 32}
    ev["jacobian"] = {"n_projections": 2, "batches": 1, "batch_size": 16, "at_init": True, "splits": ["train", "test"]}
    ev["hessian"] = {"iterations": 3, "tol": 1e-2, "batches": 1, "batch_size": 8, "at_init": True, "splits": ["test"]}
    ev["masking"] = {"batch_size": 32, "tol": 1e-5, "grad_tol": 1e-12}
    return cfg


def test_the_neighbouring_datasets_evaluations_through_the_evaluator(run):
    """ε-spectra, Wsr, Square, confusion and the proxies as registered evaluations of the evaluator: ε-curves equal
    to clean accuracy at ε → 0, consistent confusion statistics, ledger cells reused on a second call, long rows in
    their declared units (the curves' shape on a trained model: tests/test_attacks_strength.py)."""
    from nares.errors import ConfigError
    from nares.results.run import run_rows
    from nares.results.schema import unit_of

    base, out, splits = run
    cfg = _neighbour_cfg(base)
    clean = evaluate_run(out, cfg, device="cpu", splits=splits, metrics=["clean"])["cells"]["clean"]["acc"]
    res = evaluate_run(out, cfg, device="cpu", splits=splits, metrics=NEIGHBOUR_SUITE)
    assert res["computed"] == NEIGHBOUR_SUITE
    cells, n = res["cells"], cfg["data"]["test_limit"]
    one = 1 / n + 1e-12  # one image
    pgd = [cells["pgd_eps"][k]["acc"] for k in ("0.001", "2", "8", "32", "255")]
    assert abs(pgd[0] - clean) <= one and abs(cells["fgsm_eps"]["0.001"]["acc"] - clean) <= one
    assert all(0 <= a <= 1 for a in pgd) and cells["pgd_eps"]["8"]["n"] == n
    conf = cells["confusion"]
    cm = np.array(conf["cm"])
    assert cm.sum() == n and np.trace(cm) / n == conf["acc"] == clean
    model = load_model(checkpoint_path(out, "best"), torch.device("cpu"), channels_last=False)
    with torch.no_grad():
        probs = torch.softmax(model(splits.test.float01()).double(), 1)
    y = splits.test.y
    for c in range(10):
        if (y == c).any():
            assert np.allclose(conf["conf_true"][c], probs[y == c].mean(0).numpy(), atol=1e-6)
    wsr = cells["wsr"]
    assert wsr["avg_rob"] == pytest.approx((wsr["0.03"]["acc"] + wsr["0.1"]["acc"]) / 2)
    assert 0 <= cells["square"]["acc"] <= 1 and 1 <= cells["square"]["queries"] <= 31 and cells["square"]["n"] == 32
    jac, hes = cells["jacobian"], cells["hessian"]
    assert set(jac) == {"test", "test@init", "train", "train@init"} and all(v > 0 for v in jac.values())
    assert jac["test"] != jac["test@init"] and jac["train"] != jac["test"]
    assert set(hes["top_eig"]) == {"test", "test@init"} and all(0 <= v <= 1 for v in hes["converged"].values())
    from nares.evaluations.masking import curve_rise

    mask = cells["masking"]  # computed after pgd_eps in the same call: its curve is the one checked
    assert mask["nondeterministic"] == 0.0 and mask["softmax_output"] == 0.0 and 0 <= mask["zero_grad"] <= 1
    assert mask["eps_not_monotone"] == pytest.approx(100 * curve_rise(pgd))
    again = evaluate_run(out, cfg, device="cpu", splits=splits, metrics=NEIGHBOUR_SUITE)
    assert again["computed"] == [] and again["reused"] == NEIGHBOUR_SUITE
    rows = [r for r in run_rows(out).to_pylist() if r["evaluation"] in NEIGHBOUR_SUITE]
    got = {(r["evaluation"], r["metric"], r["key"]): r["value"] for r in rows}
    assert got[("pgd_eps", "acc", "8")] == pytest.approx(100 * cells["pgd_eps"]["8"]["acc"])
    assert got[("pgd_eps", "cm", "8/3/3")] == cells["pgd_eps"]["8"]["cm"][3][3]
    assert got[("wsr", "avg_rob", "")] == pytest.approx(100 * wsr["avg_rob"])
    assert got[("hessian", "top_eig", "test@init")] == hes["top_eig"]["test@init"]
    assert all(0 <= r["value"] <= 100 for r in rows if unit_of(r["evaluation"], r["metric"]) == "percent")
    bad = _neighbour_cfg(base)
    bad["eval"]["pgd_eps"]["steps"] = 0
    with pytest.raises(ConfigError, match=r"^eval\.pgd_eps\.steps is 0; expected an integer >= 1$"):
        evaluate_run(out, bad, device="cpu", splits=splits, metrics=["pgd_eps"])
