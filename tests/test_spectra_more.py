"""Jung et al.'s spectra beside FGSM and PGD (PROTOCOL §7.2): PGD towards the least-likely class (`pgd_eps`
with `target: least_likely`, their Eq. 2), APGD-CE (`apgd_eps`) and Square (`square_eps`) at their 8 ε. The
ε-curves on a linear model are checked against its exact robust accuracy (a linear model's smallest L∞
adversarial perturbation inside the [0, 1] box has a closed form); the targeted step by hand; settings, error
lines and costs by hand."""

from __future__ import annotations

import copy
import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nares.attacks.least_likely import least_likely_class, pgd_least_likely
from nares.attacks.pgd import pgd
from nares.attacks.suite import _attack_seed
from nares.config import load_preset
from nares.errors import ConfigError
from nares.evaluations import get_evaluation, suite
from nares.evaluations.base import EvalContext, Value
from tests.small_models import preset_with

pytestmark = pytest.mark.usefixtures("one_thread")

JUNG_EPS = [0.1, 0.5, 1, 2, 3, 4, 8, 255]
N, C, SHAPE = 48, 10, (3, 8, 8)
N_SQUARE = 32  # square_eps' `limit` here


@pytest.fixture(scope="module")
def linear() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """(logits = W·x + b with W, b ~ N(0, 1) on 3×8×8 images, 48 uniform images, their predictions as labels but
    for the first 4 points)."""
    g = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, C))
    with torch.no_grad():
        model[1].weight.copy_(torch.randn(C, 3 * 8 * 8, generator=g))
        model[1].bias.copy_(torch.randn(C, generator=g))
    model.eval()
    x = torch.rand(N, *SHAPE, generator=g)
    with torch.no_grad():
        y = model(x).argmax(1)
    y[:4] = (y[:4] + 1) % C
    return model, x, y


def exact_robust_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> float:
    """A point of a linear model is robust at ε iff it is classified right and, for every other class j, its
    margin (w_y − w_j)·x + b_y − b_j exceeds the most the ε-ball ∩ [0, 1]ⁿ can lower it: Σᵢ |vᵢ|·min(ε, roomᵢ),
    v = w_y − w_j, roomᵢ = xᵢ where vᵢ > 0 (coordinate falls) else 1 − xᵢ (float64)."""
    w, b = model[1].weight.double(), model[1].bias.double()
    xf = x.flatten(1).double()
    z = xf @ w.T + b
    robust = 0
    for i in range(len(x)):
        if z[i].argmax() != y[i]:
            continue
        v = w[y[i]] - w  # [C, n]
        room = torch.where(v > 0, xf[i], 1 - xf[i])
        lowest = (v.abs() * room.clamp(max=eps)).sum(1)
        margin = z[i, y[i]] - z[i]
        robust += bool(((margin > lowest) | (torch.arange(C) == y[i])).all())
    return robust / len(x)


def _cfg(**sections) -> dict:
    cfg = copy.deepcopy(load_preset("tiny"))
    cfg["eval"].update(batch_size=16, precision="fp32", seed=0, **sections)
    return cfg


def _curve(cell: dict) -> list[float]:
    return [cell[k]["acc"] for k in map(str, JUNG_EPS)]


def test_apgd_eps_curve_is_the_exact_robust_accuracy(linear):
    """APGD-CE at Jung et al.'s settings (100 iterations, 1 restart) on the linear model: never below the exact
    robust accuracy (nothing robust is fooled), at most one point above it, ≈ clean accuracy at 0.1/255, 0 at
    255/255, non-increasing."""
    model, x, y = linear
    cfg = _cfg(apgd_eps={"eps_255": JUNG_EPS, "n_iter": 100, "n_restarts": 1, "rho": 0.75})
    cell = get_evaluation("apgd_eps").cell(EvalContext(cfg=cfg, model=model, x=x, y=y))
    curve = _curve(cell)
    exact = [exact_robust_accuracy(model, x, y, e / 255) for e in JUNG_EPS]
    assert exact[0] > 0.85 and exact[-2] < 0.2 and exact[-1] == 0.0  # a curve worth checking
    assert all(e <= a <= e + 1 / N for a, e in zip(curve, exact, strict=True)), (curve, exact)
    with torch.no_grad():
        clean = float((model(x).argmax(1) == y).double().mean())
    assert clean - 1 / N <= curve[0] <= clean and curve[-1] == 0.0
    assert all(b <= a for a, b in itertools.pairwise(curve))
    c8 = cell["8"]
    assert c8["n"] == N and sum(map(sum, c8["cm"])) == N
    assert c8["acc"] == sum(c8["cm"][i][i] for i in range(C)) / N  # accuracy from the attacked images' predictions
    assert [sum(row) for row in c8["cm"]] == torch.bincount(y, minlength=C).tolist()  # rows: true classes


def test_square_eps_curve_on_the_first_images(linear):
    """Square (score-based) at the 8 ε on the first 32 images: never below the exact robust accuracy of those
    images, between it and clean accuracy at 0.1/255, 0 at 255/255, non-increasing; its query counts."""
    model, x, y = linear
    n_queries = 300
    cfg = _cfg(square_eps={"eps_255": JUNG_EPS, "n_queries": n_queries, "p_init": 0.8, "n_restarts": 1,
                           "resc_schedule": False, "limit": N_SQUARE})
    ev = get_evaluation("square_eps")
    cell = ev.cell(EvalContext(cfg=cfg, model=model, x=x, y=y))
    curve = _curve(cell)
    xs, ys = x[:N_SQUARE], y[:N_SQUARE]
    exact = [exact_robust_accuracy(model, xs, ys, e / 255) for e in JUNG_EPS]
    assert all(a >= e for a, e in zip(curve, exact, strict=True)), (curve, exact)
    with torch.no_grad():
        correct = int((model(xs).argmax(1) == ys).sum())
    assert exact[0] <= curve[0] <= correct / N_SQUARE and curve[-1] == exact[-1] == 0.0
    assert curve[-2] < curve[0] - 0.2  # ε = 8/255 hurts
    assert all(b <= a for a, b in itertools.pairwise(curve))
    assert all(cell[k]["n"] == N_SQUARE for k in cell)
    if curve[0] == correct / N_SQUARE:  # nothing fooled at 0.1/255: every right point spends the full budget
        assert cell["0.1"]["queries"] == correct * (n_queries + 1) / N_SQUARE
    assert cell["255"]["queries"] < 3  # at ε = 1 the stripes start already fools (almost) every point
    values = ev.values(cell)
    assert Value("queries", "8", cell["8"]["queries"]) in values
    assert Value("acc", "8", pytest.approx(100 * cell["8"]["acc"])) in values


def test_least_likely_step_by_hand():
    """One step from x (init none) on a float64 linear model: x̂ = P(x − α·sign(Wᵀ(softmax − onehot(y_LL))))
    with y_LL the argmin of the clean logits; the step lowers CE towards y_LL."""
    g = torch.Generator().manual_seed(3)
    w, b = torch.randn(C, 12, generator=g, dtype=torch.float64), torch.randn(C, generator=g, dtype=torch.float64)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, C)).double()
    with torch.no_grad():
        model[1].weight.copy_(w)
        model[1].bias.copy_(b)
    x = torch.rand(6, 3, 2, 2, generator=g, dtype=torch.float64)
    x[0] = 1.0  # saturated: the box binds
    eps, step = 0.05, 0.02
    z = x.flatten(1) @ w.T + b
    ll = z.argmin(1)
    assert torch.equal(least_likely_class(model, x), ll)
    grad = ((torch.softmax(z, 1) - F.one_hot(ll, C).double()) @ w).view_as(x)
    want = torch.clamp(torch.clamp(x - step * grad.sign(), x - eps, x + eps), 0.0, 1.0)
    got = pgd_least_likely(model, x, eps=eps, step=step, steps=1, init="none")
    assert torch.equal(got, want)
    with torch.no_grad():
        ce = [F.cross_entropy(model(t), ll, reduction="none") for t in (x, got)]
        many = pgd_least_likely(model, x, eps=eps, step=step / 4, steps=12, init="none")
        ce.append(F.cross_entropy(model(many), ll, reduction="none"))
    assert (ce[1] < ce[0]).all() and (ce[2] < ce[0]).all()


def test_pgd_eps_target_option(linear):
    """`target: least_likely` runs the targeted PGD with the evaluation's seeded start; predictions move to the
    least-likely class as ε grows. `untargeted` is the PGD it always was."""
    model, x, y = linear
    eps_list = [0.5, 32, 255]
    base = {"eps_255": eps_list, "steps": 10, "step_fraction": 0.25, "init": "uniform"}
    ctx = EvalContext(cfg=_cfg(pgd_eps={**base, "target": "least_likely"}), model=model, x=x, y=y)
    cell = get_evaluation("pgd_eps").cell(ctx)
    g = torch.Generator().manual_seed(_attack_seed(0, "pgd_eps"))
    ll = least_likely_class(model, x)
    share_ll = []
    for e in eps_list:
        preds = torch.cat([model(pgd_least_likely(model, x[i:i + 16], eps=e / 255, step=e / 255 / 4, steps=10,
                                                  generator=g)).argmax(1).detach() for i in range(0, N, 16)])
        cm = torch.bincount(y * C + preds, minlength=C * C).view(C, C)
        assert cell[f"{e:g}"]["cm"] == cm.tolist()
        share_ll.append(float((preds == ll).double().mean()))
    assert share_ll[0] == 0.0 < share_ll[1] < share_ll[2] == 1.0
    untargeted = get_evaluation("pgd_eps").cell(
        EvalContext(cfg=_cfg(pgd_eps={**base, "target": "untargeted"}), model=model, x=x, y=y))
    g = torch.Generator().manual_seed(_attack_seed(0, "pgd_eps"))
    for e in eps_list:
        preds = torch.cat([model(pgd(model, x[i:i + 16], y[i:i + 16], eps=e / 255, step=e / 255 / 4, steps=10,
                                     generator=g)).argmax(1).detach() for i in range(0, N, 16)])
        assert untargeted[f"{e:g}"]["acc"] == float((preds == y).double().mean())


def test_jung_settings_in_the_full_preset():
    full = load_preset("full")
    ev = full["eval"]
    assert ev["pgd_eps"]["target"] == "untargeted"  # Jung et al.'s runs; least_likely is the option
    a, s = get_evaluation("apgd_eps").settings(full), get_evaluation("square_eps").settings(full)
    assert list(a.eps_255) == list(s.eps_255) == list(get_evaluation("pgd_eps").settings(full).eps_255) == JUNG_EPS
    assert (a.n_iter, a.n_restarts, a.rho) == (100, 1, 0.75)
    assert (s.n_queries, s.p_init, s.n_restarts, s.resc_schedule, s.limit) == (5000, 0.8, 1, False, 1000)
    jung = suite(full, "jung")
    assert {"apgd_eps", "square_eps"} <= set(jung) and "square" not in jung


@pytest.mark.parametrize(("name", "key", "value", "message"), [
    ("pgd_eps", "target", "most_likely", r"^eval\.pgd_eps\.target is 'most_likely'; expected one of untargeted, "
                                         r"least_likely$"),
    ("pgd_eps", "target", None, r"^eval\.pgd_eps\.target is missing; expected one of untargeted, least_likely$"),
    ("apgd_eps", "rho", 1, r"^eval\.apgd_eps\.rho is 1; expected a number in \(0, 1\)$"),
    ("apgd_eps", "eps_255", [8, 2], r"^eval\.apgd_eps\.eps_255 is \[8, 2\]; expected a list of at least one item, "
                                    r"each a number > 0, strictly increasing$"),
    ("square_eps", "limit", 0, r"^eval\.square_eps\.limit is 0; expected null or an integer >= 1$"),
    ("square_eps", "p_init", 0, r"^eval\.square_eps\.p_init is 0; expected a number in \(0, 1\]$"),
])
def test_bad_settings_are_one_line_naming_the_key(name, key, value, message):
    cfg = preset_with((name, key), value)
    with pytest.raises(ConfigError, match=message):
        suite(cfg, "jung")


def test_costs_by_hand():
    full = load_preset("full")
    n, third = 10_000, 1 / 3
    cost = {name: get_evaluation(name).cost(get_evaluation(name).settings(full), n)
            for name in ("pgd_eps", "apgd_eps", "square_eps")}
    assert cost["apgd_eps"] == pytest.approx(8 * n * (100 + third))  # 100 iterations + the cell's forward pass
    # the first 1,000 images: 1 clean pass, 5,000 queries + the start + 1 check, + the cell's pass, per ε
    assert cost["square_eps"] == pytest.approx(8 * 1_000 * (1 + 5_001 + 1 + 1) * third)
    assert cost["pgd_eps"] == pytest.approx(8 * n * (40 + third))
    cfg = copy.deepcopy(full)
    cfg["eval"]["pgd_eps"]["target"] = "least_likely"  # one more forward pass per point and ε: the target class
    ev = get_evaluation("pgd_eps")
    assert ev.cost(ev.settings(cfg), n) == pytest.approx(8 * n * (40 + 2 * third))
    tiny = load_preset("tiny")
    sq = get_evaluation("square_eps")
    assert sq.cost(sq.settings(tiny), 256) == pytest.approx(4 * 64 * (1 + 101 + 1 + 1) * third)
