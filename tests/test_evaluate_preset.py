"""A run is evaluated only under its training preset: the default of `nares evaluate`, and refused otherwise.

One real 1-epoch run of a `micro` preset (width_base 1) in a params file of its own.
"""

from __future__ import annotations

import copy

import pytest
import torch
import yaml

from factory.cli import main
from nares.config import REPO_ROOT, load_preset
from nares.data import load_splits
from nares.evaluate import evaluate_run
from nares.evaluate.ledger import read_cells
from nares.evaluate.metrics import complexity_cell
from nares.spaces.wrn import Arch
from nares.sweep.work import ArchRunner
from nares.train import train_arch
from nares.train.checkpoints import RunError
from nares.train.runtime import evaluation_hash

ARCH = "4-8-4-8-4-8"
MICRO = {
    "model": {"width_base": 1},
    "data": {"train": "cifar10-subset", "train_limit": 192, "val": "holdout", "val_holdout": 64,
             "test": "cifar10-subset", "test_limit": 64, "corruption_limit": 4},
    "train": {"epochs": 1, "batch_size": 64, "lr_milestones": [], "precision": "fp32", "deterministic": True,
              "channels_last": False, "attack": {"steps": 1, "step_255": 8}},
    "checkpoints": {"save_epochs": [0, 0]},
    "validation": {"batch_size": 64, "pgd": {"steps": 1, "step_255": 8, "eps_255": 8, "init": "uniform"},
                   "cw": {"steps": 1, "step_255": 8, "eps_255": 8, "init": "uniform", "kappa": 0}},
    "eval": {"batch_size": 64, "precision": "fp32"},
}


def write_params(path, micro: dict):
    doc = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    doc["presets"]["micro"] = micro
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory, data_dir):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("evalpreset")
    params = write_params(root / "params.yaml", MICRO)
    cfg = load_preset("micro", params)
    out = root / "run"
    train_arch(ARCH, cfg, out, device="cpu", splits=load_splits(cfg["data"], root=data_dir, seed=0), progress=False)
    yield params, out
    torch.set_num_threads(before)


def snapshot(folder) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def refused(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("nares: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err.removeprefix("nares: error: ").rstrip("\n")


def test_default_preset_is_the_runs_training_preset(run, monkeypatch, capsys):
    params, out = run
    monkeypatch.setenv("NARES_PARAMS", str(params))
    assert main(["evaluate", str(out), "--metrics", "complexity", "--device", "cpu"]) == 0
    capsys.readouterr()
    micro = load_preset("micro", params)
    (cell,) = [c for c in read_cells(out) if c["metric"] == "complexity"]
    assert cell["preset_hash"] == evaluation_hash(micro, "complexity")
    assert cell["values"] == complexity_cell(Arch.parse(ARCH), micro) and cell["values"]["width_base"] == 1
    assert cell["values"] != complexity_cell(Arch.parse(ARCH), load_preset("full", params))  # the old default


@pytest.mark.parametrize("other", ["tiny", "full"])
def test_another_preset_is_refused_before_any_work(run, monkeypatch, capsys, other):
    params, out = run
    monkeypatch.setenv("NARES_PARAMS", str(params))
    before = snapshot(out)
    err = refused(capsys, ["evaluate", str(out), "--preset", other, "--metrics", "complexity", "--device", "cpu"])
    assert err == (f"{out} was trained with preset 'micro', not {other!r}: its cells would be wrong; evaluate it "
                   "with preset 'micro' (the default of `nares evaluate`)")
    assert snapshot(out) == before


@pytest.mark.parametrize("explicit", [False, True])
def test_same_name_edited_training_settings_is_refused(run, tmp_path, monkeypatch, capsys, explicit):
    _, out = run
    edited = copy.deepcopy(MICRO)
    edited["model"]["width_base"] = 2
    monkeypatch.setenv("NARES_PARAMS", str(write_params(tmp_path / "params.yaml", edited)))
    before = snapshot(out)
    err = refused(capsys, ["evaluate", str(out), *(["--preset", "micro"] if explicit else []), "--metrics",
                           "complexity", "--device", "cpu"])
    assert err.startswith(f"{out} was trained with preset 'micro' at training hash ") and "now hash to " in err
    assert snapshot(out) == before


def test_eval_only_edits_are_the_same_training_preset(run, tmp_path, monkeypatch, capsys):
    """eval.* settings are not part of the training hash: editing them re-evaluates, it is not refused."""
    _, out = run
    edited = copy.deepcopy(MICRO)
    edited["eval"]["metric_versions"] = {"complexity": 2}
    monkeypatch.setenv("NARES_PARAMS", str(write_params(tmp_path / "params.yaml", edited)))
    assert main(["evaluate", str(out), "--metrics", "complexity", "--device", "cpu"]) == 0
    assert "computed complexity" in capsys.readouterr().out
    assert [c["metric_version"] for c in read_cells(out) if c["metric"] == "complexity"][-1] == 2


def test_library_and_sweep_worker_refuse_another_preset(run, data_dir, monkeypatch):
    params, out = run
    monkeypatch.setenv("NARES_DATA_DIR", str(data_dir))
    tiny = load_preset("tiny", params)
    before = snapshot(out)
    with pytest.raises(RunError, match="was trained with preset 'micro', not 'tiny'"):
        evaluate_run(out, tiny, device="cpu", metrics=["complexity"])
    worker = ArchRunner(tiny, "train", device="cpu")
    with pytest.raises(RunError, match="was trained with preset 'micro', not 'tiny'"):
        worker.evaluate(out, [("best", ["complexity"])])      # the re-evaluate job
    with pytest.raises(RunError, match="holds a finished run of 4-8-4-8-4-8 .preset micro."):
        worker.run(ARCH, out)                               # the sweep job: train (refused), then evaluate
    assert snapshot(out) == before


def test_reevaluate_refuses_runs_of_another_training_preset():
    """The re-evaluate plan (stale_cells with the preset's training hash) refuses runs trained under another one."""
    from nares.sweep.selection import SweepError
    from nares.sweep.stale import Cell, stale_cells

    ledger = [
        {"arch_id": 1, "checkpoint": "all", "metric": "train", "metric_version": 1, "preset_hash": "aaaa"},
        {"arch_id": 1, "checkpoint": "best", "metric": "pgd", "metric_version": 1, "preset_hash": "e1"},
        {"arch_id": 2, "checkpoint": "all", "metric": "train", "metric_version": 1, "preset_hash": "bbbb"},
    ]
    assert stale_cells(ledger, [1, 3], {"pgd": 1}, ["best"], training_hash="aaaa") == [Cell(3, "best", "pgd", 1)]
    with pytest.raises(SweepError, match="^arch id.s. 2 were trained with training hash bbbb, not this preset's aaaa"):
        stale_cells(ledger, [1, 2], {"pgd": 1}, ["best"], training_hash="aaaa")
    assert stale_cells(ledger, [2], {"pgd": 1}, ["best"]) == [Cell(2, "best", "pgd", 1)]   # unchecked without a hash
