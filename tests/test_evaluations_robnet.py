"""RobNets' attacks as evaluations (PROTOCOL §7.4): PGD-100 (`pgd100`) and MI-FGSM (`mifgsm`). MI-FGSM against a
hand computation on a linear model and against torchattacks' `MIFGSM` with the same settings; both evaluations'
cells recomputed from the attack with the evaluation's seeded generator; settings from params.yaml and their
error lines; the `robnet` suite and its cost by hand."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nares.attacks.common import AttackError
from nares.attacks.metrics import empirical_lipschitz
from nares.attacks.mifgsm import mifgsm
from nares.attacks.pgd import pgd
from nares.attacks.suite import _attack_seed
from nares.config import load_preset
from nares.errors import ConfigError
from nares.evaluations import get_evaluation, suite
from nares.evaluations.base import EvalContext, Value
from tests.small_models import mislabelled_batch, predict, preset_with

pytestmark = pytest.mark.usefixtures("one_thread")

N = 24


@pytest.fixture(scope="module")
def setup() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """(small CNN in eval mode with BN statistics of random images, 24 random 3×16×16 images, their predictions
    as labels but for the first 3; the top two rows saturated)."""
    return mislabelled_batch(N, 3, bright_rows=2)


def test_mifgsm_by_hand_on_a_linear_model():
    """Logits W·x + b: ∇ₓ CE = Wᵀ(softmax − onehot(y)); the momentum recursion and the projection by hand (float64)."""
    g = torch.Generator().manual_seed(0)
    w, b = torch.randn(4, 12, generator=g, dtype=torch.float64), torch.randn(4, generator=g, dtype=torch.float64)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 4)).double()
    with torch.no_grad():
        model[1].weight.copy_(w)
        model[1].bias.copy_(b)
    x = torch.rand(5, 3, 2, 2, generator=g, dtype=torch.float64)
    x[0] = 0.999  # near the box's top: the [0, 1] clip binds
    y = torch.tensor([0, 1, 2, 3, 0])
    eps, step, steps = 0.05, 0.02, 4
    for mu in (1.0, 0.5, 0.0):
        x_hat, acc = x.clone(), torch.zeros_like(x)
        for _ in range(steps):
            p = torch.softmax(x_hat.flatten(1) @ w.T + b, dim=1)
            grad = ((p - F.one_hot(y, 4).double()) @ w).view_as(x)
            acc = mu * acc + grad / grad.abs().mean(dim=(1, 2, 3), keepdim=True)
            x_hat = torch.clamp(torch.clamp(x_hat + step * acc.sign(), x - eps, x + eps), 0.0, 1.0)
        got = mifgsm(model, x, y, eps=eps, step=step, steps=steps, decay=mu)
        assert torch.allclose(got, x_hat, rtol=0, atol=1e-12), mu
        assert (got - x).abs().max() <= eps + 1e-12 and got.min() >= 0 and got.max() <= 1
    # momentum matters: the μ = 1 run differs from the memoryless one (I-FGSM) on this model
    assert not torch.equal(mifgsm(model, x, y, eps=eps, step=step, steps=steps, decay=1.0),
                           mifgsm(model, x, y, eps=eps, step=step, steps=steps, decay=0.0))


@pytest.mark.parametrize(("eps_255", "steps", "step_255", "decay"), [(8, 20, 0.4, 1.0), (2, 10, 0.5, 0.5)])
def test_mifgsm_matches_torchattacks(setup, eps_255, steps, step_255, decay):
    """The same images as torchattacks' MIFGSM up to float rounding (its mean-reduced loss and its projection
    x + clip(x̂ − x) round differently; no sign of the momentum differs), hence the same verdict per point."""
    torchattacks = pytest.importorskip("torchattacks")
    model, x, y = setup
    eps, step = eps_255 / 255, step_255 / 255
    ref = torchattacks.MIFGSM(model, eps=eps, alpha=step, steps=steps, decay=decay)(x, y)
    ours = mifgsm(model, x, y, eps=eps, step=step, steps=steps, decay=decay)
    assert (ours - ref).abs().max() <= 1e-6
    assert torch.equal(predict(model, ours), predict(model, ref))
    if eps_255 == 2:  # a mix of fooled and robust points
        assert 0 < int((predict(model, ours) == y).sum()) < N - 3


def test_mifgsm_bad_arguments(setup):
    model, x, y = setup
    for kwargs in ({"eps": -1.0}, {"steps": -1}, {"decay": -0.5}, {"precision": "fp8"}):
        with pytest.raises(AttackError) as err:
            mifgsm(model, x, y, **{"eps": 0.03, "step": 0.01, "steps": 1, **kwargs})
        assert "\n" not in str(err.value)


def _cfg(**sections) -> dict:
    cfg = copy.deepcopy(load_preset("tiny"))
    cfg["eval"].update(batch_size=10, precision="fp32", seed=5, **sections)  # three batches: 10, 10, 4
    return cfg


def _by_hand(model, x, y, attack) -> dict[str, float]:
    """acc, loss, stable, lip of `attack(x, y)` over batches of 10, computed here."""
    correct = loss = stable = lip = 0.0
    for i in range(0, len(x), 10):
        xb, yb = x[i:i + 10], y[i:i + 10]
        x_adv = attack(xb, yb)
        with torch.no_grad():
            clean, adv = model(xb), model(x_adv)
        correct += float((adv.argmax(1) == yb).sum())
        loss += float(F.cross_entropy(adv, yb, reduction="sum"))
        stable += float((adv.argmax(1) == clean.argmax(1)).sum())
        lip += float(empirical_lipschitz(clean, adv, xb, x_adv).sum())
    return {"acc": correct / len(x), "loss": loss / len(x), "stable": stable / len(x), "lip": lip / len(x)}


def test_pgd100_cell_is_pgd_with_its_settings_and_seed(setup):
    model, x, y = setup
    cfg = _cfg(pgd100={"steps": 7, "step_255": 1.5, "init": "uniform"}, eps_255=4)
    cell = get_evaluation("pgd100").cell(EvalContext(cfg=cfg, model=model, x=x, y=y))
    g = torch.Generator().manual_seed(_attack_seed(5, "pgd100"))
    want = _by_hand(model, x, y, lambda xb, yb: pgd(model, xb, yb, eps=4 / 255, step=1.5 / 255, steps=7,
                                                    init="uniform", generator=g))
    assert cell["n"] == N
    for k, v in want.items():
        assert cell[k] == pytest.approx(v, rel=1e-9, abs=1e-12), k
    assert 0 < cell["acc"] < 1 and cell["stable"] >= cell["acc"] - 3 / N  # the 3 wrong labels can be stable
    values = get_evaluation("pgd100").values(cell)
    assert [v.metric for v in values] == ["acc", "loss", "stable", "lip"]
    assert values[0] == Value("acc", "", pytest.approx(100 * cell["acc"]))


def test_mifgsm_cell_is_the_attack_with_its_settings(setup):
    model, x, y = setup
    cfg = _cfg(mifgsm={"steps": 6, "step_255": 0.5, "decay": 1.0}, eps_255=3)
    cell = get_evaluation("mifgsm").cell(EvalContext(cfg=cfg, model=model, x=x, y=y))
    want = _by_hand(model, x, y, lambda xb, yb: mifgsm(model, xb, yb, eps=3 / 255, step=0.5 / 255, steps=6))
    for k, v in want.items():
        assert cell[k] == pytest.approx(v, rel=1e-9, abs=1e-12), k


def test_published_settings_reach_the_attacks(monkeypatch, setup):
    """The full preset's PGD-100 runs 100 steps of 2/255 from a uniform start at ε = 8/255; MI-FGSM 20 steps of
    ε/20 with μ = 1 (the documented choice)."""
    import sys

    model, x, y = setup
    seen: dict[str, dict] = {}

    def spy(name):
        def attack(model, x, y, **kw):
            seen[name] = kw
            return x
        return attack

    monkeypatch.setattr(sys.modules["nares.attacks.pgd"], "pgd", spy("pgd100"))
    monkeypatch.setattr(sys.modules["nares.attacks.mifgsm"], "mifgsm", spy("mifgsm"))
    full = copy.deepcopy(load_preset("full"))
    full["eval"]["precision"] = "fp32"
    for name in ("pgd100", "mifgsm"):
        cell = get_evaluation(name).cell(EvalContext(cfg=full, model=model, x=x, y=y))
        assert cell["acc"] == pytest.approx(float((predict(model, x) == y).double().mean()))  # x̂ = x: clean accuracy
    p, m = seen["pgd100"], seen["mifgsm"]
    assert (p["eps"], p["step"], p["steps"], p["init"], p["precision"]) == (8 / 255, 2 / 255, 100, "uniform", "fp32")
    assert (m["eps"], m["step"], m["steps"], m["decay"]) == (8 / 255, 0.4 / 255, 20, 1.0)
    assert m["step"] * m["steps"] == pytest.approx(m["eps"])  # α = ε/T


@pytest.mark.parametrize(("name", "key", "value", "message"), [
    ("mifgsm", "decay", -1, r"^eval\.mifgsm\.decay is -1; expected a number >= 0$"),
    ("mifgsm", "steps", 0, r"^eval\.mifgsm\.steps is 0; expected an integer >= 1$"),
    ("pgd100", "init", "gaussian", r"^eval\.pgd100\.init is 'gaussian'; expected one of uniform$"),
    ("pgd100", "step_255", None, r"^eval\.pgd100\.step_255 is missing; expected a number > 0$"),
])
def test_bad_settings_are_one_line_naming_the_key(name, key, value, message):
    cfg = preset_with((name, key), value)
    with pytest.raises(ConfigError, match=message):
        suite(cfg, "robnet")


def test_robnet_suite_and_its_cost_by_hand():
    from nares.sweep.estimate import work_passes

    full = load_preset("full")
    members = suite(full, "robnet")
    assert members[:5] == ["clean", "fgsm", "pgd", "pgd100", "mifgsm"]
    rest = copy.deepcopy(full)  # members appended later (e.g. fsp) are costed by their own cost models
    rest["eval"]["suites"]["rest"] = members[5:]
    others = work_passes(rest, "rest")["eval"] if members[5:] else 0.0
    n, third = 10_000, 1 / 3
    clean, fgsm, pgd20 = n * third, n * (1 + third), n * (20 + third)
    pgd100 = n * (100 + 2 * third)  # 100 gradient passes + its clean and adversarial forward passes
    mi = n * (20 + 2 * third)
    assert work_passes(full, "robnet")["eval"] == pytest.approx(clean + fgsm + pgd20 + pgd100 + mi + others, rel=1e-12)
