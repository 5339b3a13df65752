"""One tiny PGD-AT run in process: checkpoint schedule, best-epoch rule, completion marker, idempotence, CLI guard."""

from __future__ import annotations

import json

import pytest
import torch

from factory.cli import main
from nares.attacks.suite import evaluate_attacks
from nares.constants import CHECKPOINT_KINDS
from nares.data import load_splits
from nares.evaluate.runner import load_model
from nares.io import sha256_file
from nares.records import HISTORY_KEYS
from nares.train import train_arch
from nares.train.checkpoints import DONE_FILE, STATE_FILE, RunError, checkpoint_path, load_checkpoint
from nares.train.runtime import training_hash
from tests.test_train_resume import ARCH, micro_cfg

pytestmark = pytest.mark.slow  # trains a tiny model once (~25 s on 2 busy cores)




@pytest.fixture(scope="module")
def micro_run(tmp_path_factory, data_dir, one_thread):
    cfg = micro_cfg()
    out = tmp_path_factory.mktemp("run")
    splits = load_splits(cfg["data"], root=data_dir, seed=cfg["train"]["seed"])
    return cfg, out, splits, train_arch(ARCH, cfg, out, device="cpu", splits=splits, progress=False)


def test_history_and_checkpoint_schedule(micro_run):
    cfg, out, _, res = micro_run
    epochs = cfg["train"]["epochs"]
    assert set(res.history) == set(HISTORY_KEYS) and all(len(v) == epochs for v in res.history.values())
    for k in ("train_acc", "val_acc", "pgd", "pgd_stable", "cw", "cw_stable"):
        assert all(0.0 <= v <= 1.0 for v in res.history[k]), k
    assert all(p <= c for p, c in zip(res.history["pgd"], res.history["val_acc"], strict=True))
    cw = res.history["cw"]
    assert res.best_epoch == cw.index(max(cw))  # highest val CW, ties → earliest
    metas = {k: load_checkpoint(checkpoint_path(out, k))["meta"] for k in CHECKPOINT_KINDS}
    assert {k: m["epoch"] for k, m in metas.items()} == {"e74": 0, "e89": 1, "last": epochs - 1, "best": res.best_epoch}
    assert all(m["arch"] == ARCH and m["seed"] == 0 and m["preset_hash"] == training_hash(cfg) for m in metas.values())
    done = json.loads((out / DONE_FILE).read_text())
    for kind in CHECKPOINT_KINDS:
        assert done["checkpoints"][kind]["sha256"] == sha256_file(checkpoint_path(out, kind))
    assert not (out / "state").exists()
    train = done["phases"]["train"]  # device-seconds on the named device, a CPU's counted too
    assert done["device"] == "cpu" and train["device"] == "cpu" and set(train) == {
        "device", "device_seconds", "validation_device_seconds"}
    assert 0 < train["validation_device_seconds"] < train["device_seconds"] == res.device_seconds
    assert done["training_time_device_days"] == train["device_seconds"] / 86400


@pytest.mark.parametrize("kind", ["best", "e74"])
def test_checkpoint_reproduces_its_epochs_validation(micro_run, kind):
    """Reloading a checkpoint and re-running clean validation gives exactly that epoch's logged numbers."""
    cfg, out, splits, res = micro_run
    model = load_model(checkpoint_path(out, kind), torch.device("cpu"), channels_last=False)
    epoch = load_checkpoint(checkpoint_path(out, kind))["meta"]["epoch"]
    m = evaluate_attacks(model, splits.val.x, splits.val.y, cfg["validation"], names=["clean"], batch_size=64)["clean"]
    assert m.acc == res.history["val_acc"][epoch]
    assert m.loss == pytest.approx(res.history["val_loss"][epoch], rel=1e-6)


def test_finished_run_is_not_retrained_and_guards_its_directory(micro_run):
    cfg, out, splits, res = micro_run
    again = train_arch(ARCH, cfg, out, device="cpu", splits=splits, progress=False)
    assert again.epochs_run == 0 and again.history == res.history and again.best_epoch == res.best_epoch
    with pytest.raises(RunError, match="holds a finished run of 4-8-4-8-4-8"):
        train_arch("5-10-5-10-5-10", cfg, out, device="cpu", splits=splits, progress=False)


def test_cli_refuses_to_overwrite_an_interrupted_run(tmp_path, capsys):
    (tmp_path / STATE_FILE).parent.mkdir(parents=True)
    (tmp_path / STATE_FILE).write_bytes(b"x")
    assert main(["train", ARCH, "--preset", "tiny", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"nares: error: {tmp_path} holds an interrupted run; pass --resume to continue it or choose another --out"
    assert main(["train", "4-8-4-8-4-9", "--out", str(tmp_path)]) == 2
    assert "width3=9 is not one of" in capsys.readouterr().err
