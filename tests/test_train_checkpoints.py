"""Checkpoint files: weights-only loading, metadata, the schedule of kinds, and the pending-best commit rule."""

from __future__ import annotations

import pytest
import torch

from nares.config import load_preset
from nares.spaces.wrn import build_model
from nares.train.checkpoints import (
    PENDING_BEST,
    RunError,
    checkpoint_path,
    cpu_state_dict,
    load_checkpoint,
    promote_pending_best,
    save_checkpoint,
)
from nares.train.runtime import evaluation_hash, training_hash
from nares.train.trainer import epoch_seed, save_epoch_kinds

ARCH = "4-8-4-8-4-8"


def _meta(epoch: int) -> dict:
    return {"arch": ARCH, "epoch": epoch, "width_base": 1, "num_classes": 10}


def test_checkpoint_roundtrip_is_weights_only_and_nchw(tmp_path):
    model = build_model(ARCH, width_base=1).to(memory_format=torch.channels_last)
    path = save_checkpoint(tmp_path, "e74", cpu_state_dict(model), _meta(3))
    assert path == tmp_path / "checkpoints" / "e74.pt"
    assert not list(path.parent.glob("*.partial"))
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["meta"] == {**_meta(3), "kind": "e74"}
    for k, v in model.state_dict().items():
        assert torch.equal(ckpt["state_dict"][k], v.cpu())
        assert ckpt["state_dict"][k].is_contiguous()
    with pytest.raises(RunError, match="kind 'e75'"):
        checkpoint_path(tmp_path, "e75")


def test_unreadable_checkpoint_is_one_clear_error(tmp_path):
    bad = tmp_path / "x.pt"
    bad.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(RunError, match="unreadable"):
        load_checkpoint(bad)


def test_kinds_due_per_epoch():
    full = load_preset("full")
    due = {e: save_epoch_kinds(e, full) for e in range(100)}
    assert {e: k for e, k in due.items() if k} == {74: ["e74"], 89: ["e89"], 99: ["last"]}
    tiny = load_preset("tiny")
    a, b = tiny["checkpoints"]["save_epochs"]
    last = tiny["train"]["epochs"] - 1
    assert save_epoch_kinds(a, tiny) == ["e74"] and save_epoch_kinds(b, tiny) == ["e89"]
    assert save_epoch_kinds(last, tiny) == ["last"]


def test_pending_best_promoted_only_when_committed(tmp_path):
    old, new = build_model(ARCH, width_base=1), build_model(ARCH, width_base=1)
    save_checkpoint(tmp_path, "best", cpu_state_dict(old), _meta(1))
    # epoch 2 improved, but the run died before its state was saved: the resumed run's best is still epoch 1
    save_checkpoint(tmp_path, "best", cpu_state_dict(new), _meta(2), pending=True)
    assert (tmp_path / PENDING_BEST).exists()
    promote_pending_best(tmp_path, best_epoch=1)
    assert not (tmp_path / PENDING_BEST).exists()
    assert load_checkpoint(checkpoint_path(tmp_path, "best"))["meta"]["epoch"] == 1
    # committed: the state names epoch 2 as best, so the pending file becomes best.pt
    save_checkpoint(tmp_path, "best", cpu_state_dict(new), _meta(2), pending=True)
    promote_pending_best(tmp_path, best_epoch=2)
    ckpt = load_checkpoint(checkpoint_path(tmp_path, "best"))
    assert ckpt["meta"]["epoch"] == 2
    assert torch.equal(ckpt["state_dict"]["fc.weight"], new.state_dict()["fc.weight"])


def test_hashes_ignore_unrelated_sections():
    cfg = load_preset("tiny")
    other = {**cfg, "sweep": {**cfg["sweep"], "queue_depth": 99}, "nas": {}}
    assert training_hash(other) == training_hash(cfg) and evaluation_hash(other, "pgd") == evaluation_hash(cfg, "pgd")
    test_only = {**cfg, "data": {**cfg["data"], "test_limit": 7}}
    assert training_hash(test_only) == training_hash(cfg)
    assert evaluation_hash(test_only, "pgd") != evaluation_hash(cfg, "pgd")
    assert evaluation_hash(test_only, "complexity") == evaluation_hash(cfg, "complexity")
    cw_only = {**cfg, "eval": {**cfg["eval"], "cw": {**cfg["eval"]["cw"], "steps": 7}}}
    assert evaluation_hash(cw_only, "cw") != evaluation_hash(cfg, "cw")
    assert evaluation_hash(cw_only, "pgd") == evaluation_hash(cfg, "pgd")
    more_epochs = {**cfg, "train": {**cfg["train"], "epochs": 99}}
    assert training_hash(more_epochs) != training_hash(cfg)
    assert len({epoch_seed(0, e, s) for e in range(100) for s in (0, 1)}) == 200
