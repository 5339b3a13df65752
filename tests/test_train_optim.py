"""The PGD-AT optimiser: name-based weight-decay groups (with the published head-BN quirk) and the lr schedule."""

from __future__ import annotations

import copy

import pytest
import torch

from nares.config import load_preset
from nares.spaces.wrn import build_model
from nares.train.optim import decays, lr_at, make_optimizer

ARCH = "4-8-4-8-4-8"


@pytest.fixture(scope="module")
def full_train() -> dict:
    return load_preset("full")["train"]


def test_decay_rule_by_name(full_train):
    assert decays("conv1.weight", full_train)
    assert decays("stage2.0.shortcut.weight", full_train)
    assert decays("fc.weight", full_train)
    assert not decays("fc.bias", full_train)
    assert not decays("stage1.0.bn1.weight", full_train)
    assert not decays("stage3.3.bn2.bias", full_train)
    assert decays("bn.weight", full_train)  # published quirk: the head BN weight is decayed
    assert not decays("bn.bias", full_train)
    no_quirk = {**full_train, "decay_final_bn_weight": False}
    assert not decays("bn.weight", no_quirk)
    everything = {**full_train, "decay_final_bn_weight": False, "no_decay_bn_and_bias": False}
    assert decays("stage1.0.bn1.bias", everything)


def test_groups_partition_the_parameters(full_train):
    model = build_model(ARCH, width_base=1)
    opt = make_optimizer(model, full_train)
    decayed, exempt = opt.param_groups
    names = {id(p): n for n, p in model.named_parameters()}
    assert decayed["weight_decay"] == 5e-4 and exempt["weight_decay"] == 0.0
    assert len(decayed["params"]) + len(exempt["params"]) == len(names)
    # 4+4+4 blocks with 2 BNs each + the head BN → 25 BN layers (50 tensors), + fc.bias; minus bn.weight
    assert len(exempt["params"]) == 2 * 25 + 1 - 1
    assert "bn.weight" in {names[id(p)] for p in decayed["params"]}
    assert opt.defaults["momentum"] == 0.9 and opt.defaults["nesterov"] is False


def test_one_sgd_step_decays_only_decayed_params(full_train):
    """With zero gradients, one step moves a decayed parameter by -lr·wd·p and leaves exempt ones alone."""
    model = build_model(ARCH, width_base=1)
    with torch.no_grad():
        model.bn.weight.fill_(2.0)
        model.stage1[0].bn1.weight.fill_(2.0)
    before = copy.deepcopy(model.state_dict())
    opt = make_optimizer(model, full_train)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    lr, wd = full_train["lr"], full_train["weight_decay"]
    torch.testing.assert_close(model.bn.weight, torch.full_like(model.bn.weight, 2.0 - lr * wd * 2.0))
    torch.testing.assert_close(model.fc.weight, before["fc.weight"] * (1 - lr * wd))
    assert torch.equal(model.stage1[0].bn1.weight, before["stage1.0.bn1.weight"])
    assert torch.equal(model.fc.bias, before["fc.bias"])


def test_lr_schedule_full_and_tiny(full_train):
    assert lr_at(0, full_train) == 0.1
    assert lr_at(74, full_train) == 0.1
    assert lr_at(75, full_train) == pytest.approx(0.01, rel=1e-12)
    assert lr_at(89, full_train) == pytest.approx(0.01, rel=1e-12)
    assert lr_at(90, full_train) == pytest.approx(0.001, rel=1e-12)
    assert lr_at(99, full_train) == pytest.approx(0.001, rel=1e-12)
    tiny = load_preset("tiny")
    first, second = tiny["train"]["lr_milestones"]
    assert tiny["checkpoints"]["save_epochs"] == [first - 1, second - 1]  # saves just before each drop
    assert second < tiny["train"]["epochs"]
    assert lr_at(first - 1, tiny["train"]) == tiny["train"]["lr"]
    assert lr_at(first, tiny["train"]) == pytest.approx(tiny["train"]["lr"] * tiny["train"]["lr_gamma"])
