"""Attack strength on a small CNN adversarially trained here on the real CIFAR-10 subset.

The model is trained once per module (FGSM with a random start, a few epochs) so that robust accuracy is
well above zero; attacks are then compared on the same 200 test images. AutoAttack's APGD / APGD-T as
ported by torchattacks 3.5.1, configured with AutoAttack's own settings, is the reference for ours.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nares.attacks import (
    aa_compact,
    apgd_targeted_with_mask,
    apgd_with_mask,
    evaluate_attacks,
    fgsm,
    pgd,
)
from nares.config import load_preset
from tests.small_models import small_cnn

pytestmark = pytest.mark.usefixtures("one_thread")

torchattacks = pytest.importorskip("torchattacks")

EPS = 8 / 255
N_TEST = 200
TOL = 3 / N_TEST  # 3 points: run-to-run noise of a random start on 200 points
AA_SETTINGS = load_preset("full")["eval"][
    "aa"
]  # AutoAttack's: 100 iterations, 1 restart, rho 0.75, 9 targets






@pytest.fixture(scope="module")
def trained(subset_npz) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """(model in eval mode, 200 test images in [0, 1], labels) after 6 epochs of FGSM-AT on 5,438 images."""
    d = np.load(subset_npz)
    x_train = torch.from_numpy(d["x_train"]).permute(0, 3, 1, 2).float() / 255
    y_train = torch.from_numpy(d["y_train"])
    torch.manual_seed(0)
    model = small_cnn()
    g = torch.Generator().manual_seed(0)
    epochs, batch = 6, 128
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4, nesterov=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.2, total_steps=epochs * (len(x_train) // batch))
    for _ in range(epochs):
        perm = torch.randperm(len(x_train), generator=g)
        for i in range(0, len(x_train) - batch + 1, batch):
            xb, yb = x_train[perm[i : i + batch]], y_train[perm[i : i + batch]]
            flip = torch.rand(batch, generator=g) < 0.5
            xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
            model.eval()
            xb = pgd(model, xb, yb, eps=EPS, step=1.25 * EPS, steps=1, generator=g)
            model.train()
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    x = torch.from_numpy(d["x_test"][:N_TEST]).permute(0, 3, 1, 2).float() / 255
    return model, x, torch.from_numpy(d["y_test"][:N_TEST])


def robust_acc(model: nn.Module, x_adv: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return (model(x_adv).argmax(1) == y).float().mean().item()


@pytest.fixture(scope="module")
def accs(trained) -> dict[str, float]:
    """Robust accuracy of every attack with the protocol's settings (params.yaml `eval`, preset full)."""
    model, x, y = trained
    ev = load_preset("full")["eval"]
    gen = torch.Generator().manual_seed(0)
    pgd_cfg, cw_cfg = ev["pgd"], ev["cw"]
    out = {"clean": robust_acc(model, x, y)}
    out["fgsm"] = robust_acc(model, fgsm(model, x, y, eps=EPS, step=ev["fgsm"]["step_255"] / 255), y)
    out["pgd20"] = robust_acc(
        model,
        pgd(model, x, y, eps=EPS, step=pgd_cfg["step_255"] / 255, steps=pgd_cfg["steps"], generator=gen),
        y,
    )
    out["cw40"] = robust_acc(
        model,
        pgd(
            model,
            x,
            y,
            eps=EPS,
            step=cw_cfg["step_255"] / 255,
            steps=cw_cfg["steps"],
            loss="cw",
            generator=gen,
        ),
        y,
    )
    out["apgd_ce20"] = robust_acc(model, apgd_with_mask(model, x, y, eps=EPS, n_iter=20, generator=gen)[0], y)
    x_aa, robust = aa_compact(model, x, y, eps=EPS, generator=gen, **AA_SETTINGS)
    out["aa"] = robust.float().mean().item()
    out["aa_recheck"] = robust_acc(model, x_aa, y)
    return out


def test_trained_model_is_robust_but_not_perfectly(accs):
    assert 0.25 < accs["clean"] < 0.8
    assert 0.05 < accs["aa"] < accs["clean"] - 0.05


def test_attack_strength_ordering(accs):
    assert accs["pgd20"] <= accs["fgsm"] + TOL
    assert accs["aa"] <= accs["pgd20"] + TOL
    assert accs["aa"] <= accs["cw40"] + TOL
    assert accs["cw40"] <= accs["fgsm"] + TOL
    assert accs["aa_recheck"] == pytest.approx(accs["aa"], abs=1 / N_TEST)  # x̂ fools where the mask says so


def test_apgd_ce_at_least_as_strong_as_pgd_with_the_same_budget(accs):
    assert accs["apgd_ce20"] <= accs["pgd20"] + TOL


def test_reference_settings_are_autoattacks(trained):
    model = trained[0]
    ce = torchattacks.APGD(model, norm="Linf", eps=EPS, steps=100, n_restarts=1, seed=0, loss="ce", rho=0.75)
    t = torchattacks.APGDT(
        model, norm="Linf", eps=EPS, steps=100, n_restarts=1, seed=0, rho=0.75, n_classes=10
    )
    got = [(a.steps, a.n_restarts, a.thr_decr, a.eps, a.norm) for a in (ce, t)]
    assert got == [(100, 1, 0.75, EPS, "Linf")] * 2 and t.n_target_classes == 9
    assert AA_SETTINGS["apgd_ce"] == {"n_iter": 100, "n_restarts": 1, "rho": 0.75}
    assert AA_SETTINGS["apgd_t"] == {"n_iter": 100, "n_restarts": 1, "rho": 0.75, "n_target_classes": 9}


def test_apgd_matches_the_reference_implementation(trained, accs):
    """Seeded alike, our APGD-CE and APGD-T reach the reference's verdict point by point (up to float noise)."""
    model, x, y = trained
    ref_ce = torchattacks.APGD(model, eps=EPS, steps=100, n_restarts=1, seed=0, loss="ce", rho=0.75)
    ref_ce_robust = (model(ref_ce(x, y)).argmax(1) == y).detach()
    _, ce_robust = apgd_with_mask(
        model, x, y, eps=EPS, n_iter=100, generator=torch.Generator().manual_seed(0)
    )
    assert (ce_robust != ref_ce_robust).sum().item() <= 1

    # APGD-T on the points both APGD-CE runs left robust (AA-Compact's second stage)
    keep = ce_robust & ref_ce_robust
    xs, ys = x[keep], y[keep]
    ref_t = torchattacks.APGDT(model, eps=EPS, steps=100, n_restarts=1, seed=0, rho=0.75, n_classes=10)
    ref_t_robust = (model(ref_t(xs, ys)).argmax(1) == ys).detach()
    _, t_robust = apgd_targeted_with_mask(model, xs, ys, eps=EPS, generator=torch.Generator().manual_seed(0))
    assert (t_robust != ref_t_robust).sum().item() <= 1
    ref_aa = ref_t_robust.float().sum().item() / N_TEST
    assert accs["aa"] == pytest.approx(ref_aa, abs=TOL)


def test_evaluation_suite_on_the_trained_model_and_precision(trained, accs):
    model, x, y = trained
    cfg = load_preset("full")["eval"]
    x_u8 = (x * 255).round().to(torch.uint8)
    fp32 = evaluate_attacks(model, x_u8, y, cfg, names=["clean", "fgsm", "pgd"], batch_size=100, seed=3)
    assert fp32["clean"].acc == pytest.approx(accs["clean"]) and fp32["fgsm"].acc == pytest.approx(
        accs["fgsm"]
    )
    assert fp32["pgd"].acc == pytest.approx(accs["pgd20"], abs=TOL)  # another seed: noise only
    assert fp32["fgsm"].stable >= fp32["fgsm"].acc  # here a correct x̂ implies a correct x, hence a stable one
    assert fp32["pgd"].loss > fp32["clean"].loss
    bf16 = evaluate_attacks(
        model, x_u8, y, cfg, names=["clean", "fgsm", "pgd"], batch_size=100, seed=3, precision="bf16"
    )
    for name in ("clean", "fgsm", "pgd"):
        assert bf16[name].acc == pytest.approx(fp32[name].acc, abs=4 / N_TEST), name


def test_robust_accuracy_spectra_on_the_trained_model(trained, accs):
    """Jung et al.'s ε-spectra as registered evaluations on the trained model: non-increasing in ε (up to the
    run-to-run noise of a random start), equal to clean accuracy at ε → 0, ≈ 0 at ε = 255/255; Square (the
    score-based attack) no stronger than white-box PGD on this model; Wsr's mean over its ε."""
    from nares.evaluations import get_evaluation
    from nares.evaluations.base import EvalContext

    model, x, y = trained
    cfg = load_preset("tiny")
    ev = cfg["eval"]
    ev.update(batch_size=100, precision="fp32")
    ev["fgsm_eps"] = {"eps_255": [0.001, 2, 8]}
    ev["pgd_eps"] = {"eps_255": [0.001, 1, 2, 4, 8, 16, 255], "steps": 10, "step_fraction": 0.25, "init": "uniform",
                     "target": "untargeted"}
    ev["wsr"] = {"eps": [0.01, 0.03], "steps": 10, "step_factor": 2.5, "init": "uniform"}
    ev["square"] = {"n_queries": 100, "p_init": 0.8, "n_restarts": 1, "resc_schedule": False, "limit": 100}
    ctx = EvalContext(cfg=cfg, model=model, x=x, y=y, device=torch.device("cpu"))
    pgd = get_evaluation("pgd_eps").cell(ctx)
    curve = [pgd[k]["acc"] for k in ("0.001", "1", "2", "4", "8", "16", "255")]
    assert curve[0] == pytest.approx(accs["clean"], abs=1 / N_TEST)
    assert all(b <= a + TOL for a, b in itertools.pairwise(curve)) and curve[-1] <= 1 / N_TEST
    assert curve[0] - curve[4] > 0.05  # ε = 8/255 hurts: the curve is not flat
    assert curve[4] == pytest.approx(accs["pgd20"], abs=0.05)  # PGD-10, step ε/4 ≈ PGD-20, step ε/10
    fgsm = get_evaluation("fgsm_eps").cell(ctx)
    assert fgsm["0.001"]["acc"] == pytest.approx(accs["clean"], abs=1 / N_TEST)
    assert fgsm["8"]["acc"] == pytest.approx(accs["fgsm"], abs=1e-6)  # one step of ε, the suite's FGSM (float32 mean)
    wsr = get_evaluation("wsr").cell(ctx)
    assert wsr["avg_rob"] == pytest.approx((wsr["0.01"]["acc"] + wsr["0.03"]["acc"]) / 2)
    assert wsr["0.03"]["acc"] <= wsr["0.01"]["acc"] + TOL
    sq = get_evaluation("square").cell(ctx)  # the first 100 images (`limit`)
    clean100 = robust_acc(model, x[:100], y[:100])
    assert sq["n"] == 100 and sq["acc"] <= clean100 + 1e-9 and 1 <= sq["queries"] <= 101
