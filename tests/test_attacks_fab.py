"""FAB-T (L∞) against its reference, torchattacks 3.5.1's `FAB(..., multi_targeted=True)` (a port of
AutoAttack's `fab_base.py`), point by point on a tiny seeded CNN; AutoAttack's standard settings as a table;
the L∞ projection against the reference's and by hand; the ε-ball and box; the cost bound; no host sync."""

from __future__ import annotations

import inspect

import pytest
import torch
from torch import nn

from nares.attacks.common import AttackError
from nares.attacks.fab import (
    ALPHA_MAX,
    BETA,
    ETA,
    N_ITER,
    N_RESTARTS,
    N_TARGET_CLASSES,
    _fab_run,
    fab_passes,
    fab_targeted,
    fab_targeted_with_mask,
    linf_projection,
)
from nares.config import load_preset
from tests.small_models import mislabelled_batch, predict, small_cnn

pytestmark = pytest.mark.usefixtures("one_thread")

torchattacks = pytest.importorskip("torchattacks")

N, N_WRONG = 32, 4  # points; the first N_WRONG get a wrong label (misclassified on x)
# AutoAttack's standard version (fra31/auto-attack, autoattack.py): FABAttack_PT(n_restarts=5, n_iter=100, ...)
# with fab_base's defaults alpha_max=0.1, eta=1.05, beta=0.9; set_version('standard') sets fab.n_restarts = 1 and
# fab.n_target_classes = 9; 'fab-t' runs it with targeted = True (and n_restarts = 1 again).
AUTOATTACK_STANDARD_FAB_T = {
    "n_iter": 100,
    "n_restarts": 1,
    "n_target_classes": 9,
    "alpha_max": 0.1,
    "eta": 1.05,
    "beta": 0.9,
}


@pytest.fixture(scope="module")
def setup() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """(small CNN in eval mode with BN statistics of random images, 32 random 3×16×16 images, labels): labels are
    the model's predictions but for the first 4 points; saturated rows make the [0, 1] box bind."""
    return mislabelled_batch(N, N_WRONG, bright_rows=2, dark_rows=2)


def reference(model: nn.Module, eps: float, n_iter: int, n_restarts: int, n_target_classes: int):
    """torchattacks' FAB set to AutoAttack's FAB-T: multi_targeted, n_iter passed (its default is 10); its
    n_target_classes is n_classes − 1."""
    return torchattacks.FAB(model, norm="Linf", eps=eps, steps=n_iter, n_restarts=n_restarts, alpha_max=0.1,
                            eta=1.05, beta=0.9, seed=0, multi_targeted=True, n_classes=n_target_classes + 1)


@pytest.mark.parametrize(("eps_255", "n_iter", "n_restarts", "n_targets"),
                         [(2, 10, 1, 9), (4, 20, 1, 9), (1, 10, 2, 3)])
def test_matches_torchattacks_point_by_point(setup, eps_255, n_iter, n_restarts, n_targets):
    model, x, y = setup
    eps = eps_255 / 255
    with torch.random.fork_rng(devices=[]):  # the reference reseeds torch's global RNG
        ref_adv = reference(model, eps, n_iter, n_restarts, n_targets)(x, y)
        ref_state = torch.get_rng_state()
    before = torch.get_rng_state()
    g = torch.Generator().manual_seed(0)
    x_adv, robust = fab_targeted_with_mask(model, x, y, eps=eps, n_iter=n_iter, n_restarts=n_restarts,
                                           n_target_classes=n_targets, generator=g)
    assert torch.equal(x_adv, ref_adv)
    assert torch.equal(robust, predict(model, ref_adv) == y)  # the same verdict per point
    correct = predict(model, x) == y
    assert 0 < robust.sum() < correct.sum() - 2  # a mix: several points fooled, several robust
    assert torch.equal(torch.get_rng_state(), before)  # the global RNG is untouched
    assert torch.equal(g.get_state(), ref_state)  # restarts drew what the reference drew, in its order
    drew = not torch.equal(g.get_state(), torch.Generator().manual_seed(0).get_state())
    assert drew == (n_restarts > 1)  # one restart (AutoAttack's): deterministic, no draw at all
    assert torch.equal(x_adv, fab_targeted(model, x, y, eps=eps, n_iter=n_iter, n_restarts=n_restarts,
                                           n_target_classes=n_targets, seed=0))


def test_settings_are_autoattacks_standard_fab_t():
    defaults = {k: v.default for k, v in inspect.signature(fab_targeted).parameters.items()
                if k in AUTOATTACK_STANDARD_FAB_T}
    assert defaults == AUTOATTACK_STANDARD_FAB_T
    assert tuple(AUTOATTACK_STANDARD_FAB_T.values()) == (N_ITER, N_RESTARTS, N_TARGET_CLASSES, ALPHA_MAX, ETA, BETA)
    ev = load_preset("full")["eval"]
    assert ev["autoattack"]["fab_t"] == AUTOATTACK_STANDARD_FAB_T and ev["fab_t"] == AUTOATTACK_STANDARD_FAB_T
    assert ev["eps_255"] == 8
    # torchattacks' FAB: equal to AutoAttack's where it matters but for steps (10) and multi_targeted (False),
    # which the tests pass explicitly; n_target_classes is n_classes − 1 = 9.
    ta = {k: v.default for k, v in inspect.signature(torchattacks.FAB).parameters.items()}
    assert (ta["steps"], ta["multi_targeted"]) == (10, False)
    assert (ta["n_restarts"], ta["alpha_max"], ta["eta"], ta["beta"], ta["n_classes"], ta["norm"]) == (
        1, 0.1, 1.05, 0.9, 10, "Linf")
    assert ta["eps"] == pytest.approx(8 / 255)
    ref = reference(nn.Linear(2, 2), 8 / 255, 100, 1, 9)
    got = {"n_iter": ref.steps, "n_restarts": ref.n_restarts, "n_target_classes": ref.n_target_classes,
           "alpha_max": ref.alpha_max, "eta": ref.eta, "beta": ref.beta}
    assert got == AUTOATTACK_STANDARD_FAB_T and ref.multi_targeted


def test_linf_projection_by_hand():
    def project(t, w, b):
        return linf_projection(torch.tensor([t]), torch.tensor([w]), torch.tensor([b]))[0].tolist()

    # w·t = 1 > b = 0.5: both coordinates fall by λ = 0.25 (below both rooms, 0.5)
    assert project([0.5, 0.5], [1.0, 1.0], 0.5) == pytest.approx([-0.25, -0.25])
    # a fall of 0.4 with rooms 0.1 and 0.5: min(λ, 0.1) + min(λ, 0.5) = 0.4 → λ = 0.3, the first stops at 0
    assert project([0.1, 0.5], [1.0, 1.0], 0.2) == pytest.approx([-0.1, -0.3])
    # the box does not reach w·z = −1: the corner (0, 0)
    assert project([0.1, 0.1], [1.0, 1.0], -1.0) == pytest.approx([-0.1, -0.1])
    # w = (2, 0, −1): the first falls, the third rises, the second (w = 0) stays; 3λ = 0.3
    assert project([0.5, 0.5, 0.5], [2.0, 0.0, -1.0], 0.2) == pytest.approx([-0.1, 0.0, 0.1])
    # the other side of the same hyperplane family: w·t = 0.5 < b = 0.8, 3λ = 0.3 the other way
    assert project([0.5, 0.5, 0.5], [2.0, 0.0, -1.0], 0.8) == pytest.approx([0.1, 0.0, -0.1])


def test_linf_projection_equals_the_references():
    from torchattacks.attacks.fab import projection_linf

    g = torch.Generator().manual_seed(0)
    for scale in (0.1, 1.0, 10.0, 100.0):  # from every row reachable to most rows beyond the box
        t = torch.rand(64, 300, generator=g)
        t[:, :20], t[:, 20:40] = 0.0, 1.0  # saturated coordinates: zero room one way
        w = torch.randn(64, 300, generator=g)
        w[:, 40:60] = 0.0
        b = scale * torch.randn(64, generator=g)
        d = linf_projection(t, w, b)
        assert torch.equal(d, projection_linf(t, w, b))
        z = t + d
        assert z.min() >= -1e-6 and z.max() <= 1 + 1e-6
        reached = ((w * z).sum(1) - b).abs() < 1e-3 * (1 + b.abs())
        if scale == 0.1:
            assert reached.all()


def test_ball_box_and_verdicts(setup):
    model, x, y = setup
    eps = 2 / 255
    x_adv, robust = fab_targeted_with_mask(model, x, y, eps=eps, n_iter=10, n_target_classes=9)
    correct = predict(model, x) == y
    fooled = correct & ~robust
    assert (x_adv - x).abs().max() <= eps + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    assert not robust[~correct].any() and torch.equal(x_adv[~correct], x[~correct])
    assert torch.equal(x_adv[robust], x[robust])  # robust points are returned as x
    assert fooled.any() and (predict(model, x_adv[fooled]) != y[fooled]).all()
    # a larger ε fools every point fooled at the smaller one (FAB is a minimum-norm search; ε only filters)
    _, robust_big = fab_targeted_with_mask(model, x, y, eps=4 / 255, n_iter=10, n_target_classes=9)
    assert not (robust_big & ~robust).any() and robust_big.sum() < robust.sum()


def test_cost_bound_is_exact_when_nothing_is_fooled(setup):
    """With ε = 0 no point is fooled, every run attacks every correct point: the model sees exactly
    `fab_passes` images (gradient passes with grad enabled, the others forward-only)."""
    model, x, y = setup
    seen = {"grad": 0, "fwd": 0}

    def count(_module, inputs, _output):
        seen["grad" if torch.is_grad_enabled() else "fwd"] += inputs[0].shape[0]

    handle = model.register_forward_hook(count)
    try:
        _, robust = fab_targeted_with_mask(model, x, y, eps=0.0, n_iter=3, n_restarts=2, n_target_classes=2)
    finally:
        handle.remove()
    n_correct = int((predict(model, x) == y).sum())
    assert int(robust.sum()) == n_correct
    grad, fwd = fab_passes(3, n_correct, n_restarts=2, n_target_classes=2)
    assert (seen["grad"], seen["fwd"]) == (grad, fwd + (N - n_correct))  # the clean pass also sees the wrong ones
    assert fab_passes(100, 10) == (10 * 9 * 100, 10 * (1 + 9 * 102))


def test_run_loop_never_reads_tensor_values_on_the_host():
    """On the meta device any host read raises: a FAB run (its projections and bisections included) goes through."""
    model = small_cnn().to("meta").eval()
    x = torch.empty(4, 3, 32, 32, device="meta")
    y = torch.empty(4, dtype=torch.long, device="meta")
    out = _fab_run(model, x, y, y, x, n_iter=3, alpha_max=0.1, eta=1.05, beta=0.9, precision="fp32")
    assert out.shape == x.shape
    with pytest.raises((RuntimeError, NotImplementedError)):
        fab_targeted(model, x, y, eps=8 / 255, n_iter=2)  # selecting the points still robust is a host read


@pytest.mark.parametrize("kwargs", [
    {"eps": -1.0}, {"n_iter": 0}, {"n_restarts": 0}, {"n_target_classes": 0}, {"n_target_classes": 10},
    {"alpha_max": 1.5}, {"eta": 0.0}, {"beta": 0.0}, {"precision": "fp8"},
])
def test_bad_arguments_raise_one_line(setup, kwargs):
    model, x, y = setup
    with pytest.raises(AttackError) as err:
        fab_targeted(model, x, y, **{"eps": 8 / 255, "n_iter": 1, **kwargs})
    assert "\n" not in str(err.value)
