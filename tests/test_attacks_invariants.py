"""Attack invariants on real CIFAR-10 images: the ε-ball and [0, 1] box, model modes, seeding, no host sync,
AutoAttack's step-size schedule, and the evaluation suite's bookkeeping."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from nares.attacks import (
    AttackError,
    aa_compact,
    apgd,
    apgd_checkpoints,
    apgd_targeted,
    attack_settings,
    evaluate_attacks,
    fgsm,
    pgd,
)
from nares.attacks.apgd import _apgd_run
from nares.attacks.common import ce_loss
from nares.attacks.losses import dlr_loss, dlr_targeted_loss
from nares.config import load_preset
from nares.errors import ConfigError
from nares.spaces.wrn import build_model
from tests.small_models import small_cnn

pytestmark = pytest.mark.usefixtures("one_thread")

EPS = 8 / 255
AA = {
    "apgd_ce": {"n_iter": 10, "n_restarts": 1, "rho": 0.75},
    "apgd_t": {"n_iter": 10, "n_restarts": 1, "rho": 0.75, "n_target_classes": 3},
}






@pytest.fixture(scope="module")
def images(subset_npz) -> tuple[torch.Tensor, torch.Tensor]:
    """8 real test images as uint8 [N, 3, 32, 32], with saturated pixels so that the [0, 1] clip binds."""
    d = np.load(subset_npz)
    x = torch.from_numpy(d["x_test"][:8]).permute(0, 3, 1, 2).contiguous()
    x[:, :, :4] = 255
    x[:, :, -4:] = 0
    return x, torch.from_numpy(d["y_test"][:8])


@pytest.fixture(scope="module")
def model_and_batch(images) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A random small CNN and labels = its own clean predictions, so every point is attacked."""
    model = small_cnn().eval()
    x = images[0].float() / 255
    with torch.no_grad():
        y = model(x).argmax(1)
    return model, x, y


ATTACKS = {
    "fgsm": lambda m, x, y, g: fgsm(m, x, y, eps=EPS),
    "fgsm_big_step": lambda m, x, y, g: fgsm(m, x, y, eps=EPS, step=3 * EPS),
    "pgd_uniform": lambda m, x, y, g: pgd(m, x, y, eps=EPS, step=2 / 255, steps=3, generator=g),
    "pgd_gaussian_0_steps": lambda m, x, y, g: pgd(
        m, x, y, eps=EPS, step=2 / 255, steps=0, init="gaussian", init_scale=0.5, generator=g
    ),
    "pgd_gaussian": lambda m, x, y, g: pgd(
        m, x, y, eps=EPS, step=2 / 255, steps=2, init="gaussian", init_scale=2 / 255, generator=g
    ),
    "pgd_none": lambda m, x, y, g: pgd(m, x, y, eps=EPS, step=2 / 255, steps=2, init="none"),
    "cw": lambda m, x, y, g: pgd(m, x, y, eps=EPS, step=2 / 255, steps=3, loss="cw", generator=g),
    "apgd_ce": lambda m, x, y, g: apgd(m, x, y, eps=EPS, n_iter=10, generator=g),
    "apgd_dlr": lambda m, x, y, g: apgd(m, x, y, eps=EPS, n_iter=10, n_restarts=2, loss="dlr", generator=g),
    "apgd_t": lambda m, x, y, g: apgd_targeted(m, x, y, eps=EPS, n_iter=10, n_target_classes=3, generator=g),
    "aa_compact": lambda m, x, y, g: aa_compact(m, x, y, eps=EPS, generator=g, **AA)[0],
    "pgd_bf16": lambda m, x, y, g: pgd(
        m, x, y, eps=EPS, step=2 / 255, steps=3, generator=g, precision="bf16"
    ),
}


@pytest.mark.parametrize("name", sorted(ATTACKS))
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_attack_stays_in_ball_and_box_and_leaves_model_alone(name, mode, model_and_batch):
    model, x, y = model_and_batch
    model.train(mode == "train")
    model[1].train(mode != "train")  # a mixed-mode model: every module's own mode must survive
    before = {m: m.training for m in model.modules()}
    try:
        x_adv = ATTACKS[name](model, x, y, torch.Generator().manual_seed(0))
    finally:
        after = {m: m.training for m in model.modules()}
        model.eval()
    assert after == before
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype and not x_adv.requires_grad
    assert (x_adv - x).abs().max().item() <= EPS + 1e-6
    assert x_adv.min().item() >= 0.0 and x_adv.max().item() <= 1.0
    assert all(p.grad is None for p in model.parameters())
    if name.startswith(("fgsm", "pgd_none")):
        assert (x_adv != x).any()  # the deterministic attacks moved


@pytest.mark.parametrize("name", ["pgd_uniform", "pgd_gaussian", "cw", "apgd_dlr", "apgd_t", "aa_compact"])
def test_seeded_attacks_are_reproducible(name, model_and_batch):
    model, x, y = model_and_batch
    run = ATTACKS[name]
    a = run(model, x, y, torch.Generator().manual_seed(7))
    b = run(model, x, y, torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    if name.startswith("pgd"):
        assert not torch.equal(a, run(model, x, y, torch.Generator().manual_seed(8)))


def test_step_loops_never_read_tensor_values_on_the_host():
    """On the meta device any host read (.item(), bool(t), .cpu(), .tolist(), nonzero) raises: the step loops
    of PGD, FGSM and every APGD run must go through; AA-Compact's selection between runs is the one sync."""
    model = small_cnn().to("meta").eval()
    x = torch.empty(4, 3, 32, 32, device="meta")
    y = torch.empty(4, dtype=torch.long, device="meta")
    assert pgd(model, x, y, eps=EPS, step=EPS / 4, steps=3, loss="cw").shape == x.shape
    assert fgsm(model, x, y, eps=EPS).shape == x.shape
    for loss_fn in (ce_loss, dlr_loss, lambda z, t: dlr_targeted_loss(z, t, t)):
        x_adv, robust = _apgd_run(
            model, x, y, loss_fn, eps=EPS, n_iter=12, rho=0.75, generator=None, precision="fp32"
        )
        assert x_adv.shape == x.shape and robust.shape == (4,)
    with pytest.raises((RuntimeError, NotImplementedError)):
        aa_compact(model, x, y, eps=EPS, **AA)  # shows the check detects a host read


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_step_loops_do_not_synchronise_on_cuda():
    model = build_model("4-8-4-8-4-8", width_base=1).cuda().eval()
    x = torch.rand(8, 3, 32, 32, device="cuda")
    y = torch.randint(0, 10, (8,), device="cuda")
    g = torch.Generator(device="cuda").manual_seed(0)
    model(x)  # warm-up outside the checked region
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        pgd(model, x, y, eps=EPS, step=EPS / 4, steps=3, generator=g)
        _apgd_run(model, x, y, dlr_loss, eps=EPS, n_iter=12, rho=0.75, generator=g, precision="bf16")
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_apgd_checkpoints_are_autoattacks_schedule():
    assert apgd_checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]
    # the paper's recurrence p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06), p_0 = 0, p_1 = 0.22
    p = [0.0, 0.22]
    while p[-1] + max(p[-1] - p[-2] - 0.03, 0.06) <= 1.0:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    assert apgd_checkpoints(100) == [round(100 * q) for q in p[1:]]
    # the reference's counter loop (check when `counter == k`, then k = max(k − 0.03·N, 0.06·N)) for other N
    for n_iter in (1, 5, 10, 20, 37, 50, 250):
        k, k_min, dec = max(int(0.22 * n_iter), 1), max(int(0.06 * n_iter), 1), max(int(0.03 * n_iter), 1)
        counter, expected = 0, []
        for i in range(n_iter):
            counter += 1
            if counter == k:
                expected.append(i + 1)
                counter, k = 0, max(k - dec, k_min)
        assert apgd_checkpoints(n_iter) == expected, n_iter
    with pytest.raises(AttackError, match="n_iter=0"):
        apgd_checkpoints(0)


def test_bad_arguments_name_the_value(model_and_batch):
    model, x, y = model_and_batch
    with pytest.raises(AttackError, match="'l2'"):
        pgd(model, x, y, eps=EPS, step=0.01, steps=1, loss="l2")
    with pytest.raises(AttackError, match="'ball'"):
        pgd(model, x, y, eps=EPS, step=0.01, steps=1, init="ball")
    with pytest.raises(AttackError, match="init_scale"):
        pgd(model, x, y, eps=EPS, step=0.01, steps=1, init="gaussian")
    with pytest.raises(AttackError, match="'fp8'"):
        fgsm(model, x, y, eps=EPS, precision="fp8")
    with pytest.raises(AttackError, match="eps=-0.1"):
        apgd(model, x, y, eps=-0.1)
    with pytest.raises(AttackError, match="'cw'"):
        apgd(model, x, y, eps=EPS, loss="cw")
    with pytest.raises(AttackError, match="n_target_classes=10"):
        apgd_targeted(model, x, y, eps=EPS, n_iter=2, n_target_classes=10)
    with pytest.raises(AttackError, match="apgd_t settings"):
        aa_compact(model, x, y, eps=EPS, apgd_ce=AA["apgd_ce"], apgd_t=AA["apgd_ce"])


# ---- the evaluation suite ------------------------------------------------------------------------------


def test_settings_from_eval_and_validation_sections():
    full = load_preset("full")
    ev = {n: attack_settings(full["eval"], n) for n in ("fgsm", "pgd", "cw", "aa")}
    assert ev["fgsm"] == {"eps": 8 / 255, "step": 8 / 255}
    assert ev["pgd"] == {"eps": 8 / 255, "step": 0.8 / 255, "steps": 20, "loss": "ce", "init": "uniform"}
    assert ev["cw"] == {
        "eps": 8 / 255,
        "step": 0.8 / 255,
        "steps": 40,
        "loss": "cw",
        "init": "uniform",
        "kappa": 0.0,
    }
    assert ev["aa"]["apgd_ce"] == {"n_iter": 100, "n_restarts": 1, "rho": 0.75}
    assert ev["aa"]["apgd_t"] == {"n_iter": 100, "n_restarts": 1, "rho": 0.75, "n_target_classes": 9}
    val = {
        "cw": {"steps": 10, "step_255": 3.2, "eps_255": 4, "init": "uniform", "kappa": 0}
    }  # `validation` shape
    assert attack_settings(val, "cw") == {
        "eps": 4 / 255,
        "step": 3.2 / 255,
        "steps": 10,
        "loss": "cw",
        "init": "uniform",
        "kappa": 0.0,
    }
    for preset in ("full", "tiny"):
        section = load_preset(preset)["validation"]
        got = attack_settings(section, "pgd")
        assert got["eps"] == section["pgd"]["eps_255"] / 255 and got["steps"] == section["pgd"]["steps"]
    # an attack's own eps_255 overrides the section's
    assert (
        attack_settings({"eps_255": 8, "pgd": {**full["eval"]["pgd"], "eps_255": 4}}, "pgd")["eps"] == 4 / 255
    )
    with pytest.raises(ConfigError, match="eps_255"):
        attack_settings({"fgsm": {"step_255": 8}}, "fgsm")
    with pytest.raises(ConfigError, match="'steps'"):
        attack_settings({"eps_255": 8, "pgd": {"step_255": 2, "init": "uniform"}}, "pgd")
    with pytest.raises(AttackError, match="'square'"):
        attack_settings(full["eval"], "square")


CFG = {
    "eps_255": 8,
    "fgsm": {"step_255": 8},
    "pgd": {"steps": 3, "step_255": 3, "init": "uniform"},
    "cw": {"steps": 3, "step_255": 3, "init": "uniform", "kappa": 0},
    "aa": AA,
    "lipschitz_offset": 1e-6,
}


def test_evaluate_attacks_bookkeeping(images):
    model = small_cnn(seed=1)
    x, y = images
    model.eval()
    model[1].train()  # mixed modes are restored module by module
    before = {m: m.training for m in model.modules()}
    out = evaluate_attacks(model, x, y, CFG, names=["clean", "fgsm", "pgd", "cw", "aa"], batch_size=3)
    assert {m: m.training for m in model.modules()} == before
    model.eval()
    with torch.no_grad():
        logits = model(x.float() / 255)
    clean_acc = (logits.argmax(1) == y).float().mean().item()
    clean_loss = nn.functional.cross_entropy(logits, y).item()
    assert out["clean"].acc == pytest.approx(clean_acc) and out["clean"].loss == pytest.approx(
        clean_loss, rel=1e-5
    )
    assert out["clean"].stable is None and out["clean"].lip is None and out["clean"].n == 8
    assert out["aa"].stable is None and out["aa"].lip is None
    for name in ("fgsm", "pgd", "cw"):
        m = out[name]
        assert 0 <= m.acc <= out["clean"].acc and 0 <= m.stable <= 1 and m.lip > 0 and math.isfinite(m.loss)
    assert out["aa"].acc <= min(out["pgd"].acc, out["cw"].acc) + 1 / 8

    # uint8 and float inputs, batch sizes and the other attacks requested do not change an attack's numbers
    again = evaluate_attacks(model, x.float() / 255, y, CFG, names=["cw", "fgsm"], batch_size=3)
    assert again["cw"] == out["cw"] and again["fgsm"] == out["fgsm"]
    other = evaluate_attacks(model, x, y, CFG, names=["fgsm"], batch_size=8)
    assert other["fgsm"].acc == out["fgsm"].acc and other["fgsm"].stable == out["fgsm"].stable
    assert other["fgsm"].lip == pytest.approx(out["fgsm"].lip, rel=1e-5)
    reseeded = evaluate_attacks(model, x, y, CFG, names=["pgd"], batch_size=3, seed=1)
    assert reseeded["pgd"].lip != out["pgd"].lip  # a different seed draws different starts


def test_evaluate_attacks_rejects_bad_requests(images):
    model = small_cnn()
    x, y = images
    with pytest.raises(AttackError, match="'pgd20'"):
        evaluate_attacks(model, x, y, CFG, names=["pgd20"], batch_size=8)
    with pytest.raises(AttackError, match="distinct"):
        evaluate_attacks(model, x, y, CFG, names=["pgd", "pgd"], batch_size=8)
    with pytest.raises(AttackError, match="batch_size=0"):
        evaluate_attacks(model, x, y, CFG, names=["clean"], batch_size=0)
    with pytest.raises(AttackError, match=r"\(8, 3, 32, 32\) and y \(7,\)"):
        evaluate_attacks(model, x, y[:7], CFG, names=["clean"], batch_size=8)
