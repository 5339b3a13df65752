"""Resume: a run SIGKILLed at random moments, restarted until done, equals an uninterrupted run bit for bit."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from nares.config import load_preset
from nares.constants import CHECKPOINT_KINDS
from nares.train.checkpoints import DONE_FILE, STATE_FILE, checkpoint_path, load_checkpoint

ARCH = "4-8-4-8-4-8"
CHILD = "import json, sys; from nares.train import train_arch; " \
        "train_arch(sys.argv[1], json.load(open(sys.argv[2])), sys.argv[3], device='cpu', progress=False)"


def micro_cfg() -> dict:
    """The tiny preset shrunk to seconds: 3 epochs of 192 images, deterministic CPU kernels."""
    cfg = load_preset("tiny")
    cfg["data"].update(train_limit=192, val_holdout=64, test_limit=64, corruption_limit=4)
    cfg["train"].update(epochs=3, batch_size=64, lr_milestones=[1, 2], deterministic=True, channels_last=False)
    cfg["train"]["attack"].update(steps=1, step_255=8)
    cfg["checkpoints"]["save_epochs"] = [0, 1]
    cfg["validation"].update(batch_size=64)
    cfg["validation"]["pgd"].update(steps=2, step_255=4)
    cfg["validation"]["cw"].update(steps=2, step_255=4)
    cfg["eval"].update(batch_size=64)
    cfg["eval"]["pgd"].update(steps=3)
    cfg["eval"]["cw"].update(steps=3)
    cfg["eval"]["aa"]["apgd_ce"].update(n_iter=3)
    cfg["eval"]["aa"]["apgd_t"].update(n_iter=3, n_target_classes=2)
    return cfg


def _child(cfg_file: Path, out: Path, data_dir: Path) -> subprocess.Popen:
    env = {**os.environ, "NARES_DATA_DIR": str(data_dir), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", CHILD, ARCH, str(cfg_file), str(out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _run_to_end(cfg_file: Path, out: Path, data_dir: Path) -> float:
    start = time.monotonic()
    proc = _child(cfg_file, out, data_dir)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()[-2000:]
    return time.monotonic() - start


def _kill_at(cfg_file: Path, out: Path, data_dir: Path, delay: float, after_state: bool) -> None:
    proc = _child(cfg_file, out, data_dir)
    if after_state:  # die just after an epoch's state is committed (checkpoint writes in flight or next epoch)
        deadline = time.monotonic() + 300
        state = out / STATE_FILE
        seen = state.stat().st_mtime_ns if state.exists() else None
        while time.monotonic() < deadline and proc.poll() is None:
            if state.exists() and state.stat().st_mtime_ns != seen:
                break
            time.sleep(0.02)
        time.sleep(delay)
    else:
        time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.mark.slow
def test_sigkilled_run_resumes_to_the_same_result(tmp_path, data_dir):
    cfg = micro_cfg()
    cfg_file = tmp_path / "cfg.json"
    cfg_file.write_text(json.dumps(cfg))
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    total = _run_to_end(cfg_file, ref, data_dir)

    rng = random.Random(20261121)
    # First die just after a committed epoch (guaranteed mid-run on any machine speed), then at random times.
    kills = [(rng.uniform(0, 0.3), True) for _ in range(2)] + [(rng.uniform(0.3, 0.9) * total, False) for _ in range(3)]
    mid_run = 0  # kills that left a committed epoch behind, so the next start resumes
    for delay, after_state in kills:
        _kill_at(cfg_file, killed, data_dir, delay, after_state)
        if (killed / DONE_FILE).exists():
            break
        mid_run += (killed / STATE_FILE).exists()
    assert mid_run >= 1
    _run_to_end(cfg_file, killed, data_dir)

    a, b = (json.loads((d / DONE_FILE).read_text()) for d in (ref, killed))
    assert a["history"] == b["history"]  # every float identical
    assert a["best_epoch"] == b["best_epoch"] and len(a["history"]["cw"]) == cfg["train"]["epochs"]
    assert {k: v["epoch"] for k, v in a["checkpoints"].items()} == {k: v["epoch"] for k, v in b["checkpoints"].items()}
    for kind in CHECKPOINT_KINDS:
        ca, cb = load_checkpoint(checkpoint_path(ref, kind)), load_checkpoint(checkpoint_path(killed, kind))
        assert ca["meta"] == cb["meta"]
        assert ca["state_dict"].keys() == cb["state_dict"].keys()
        for k, t in ca["state_dict"].items():
            assert torch.equal(t, cb["state_dict"][k]), f"{kind}: {k} differs"
    for d in (ref, killed):
        assert not (d / "state").exists()
        assert not [p for p in d.rglob("*") if p.name.endswith(".partial")]
