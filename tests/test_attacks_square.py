"""The L∞ Square attack against its reference, torchattacks 3.5.1's `Square` (a port of AutoAttack's
`square.py`), point by point on a tiny seeded CNN; AutoAttack's settings and schedule; the ε-ball and
[0, 1] box; the bookkeeping of queries; argument checks."""

from __future__ import annotations

import inspect

import pytest
import torch
from torch import nn

from nares.attacks.common import AttackError
from nares.attacks.square import (
    LOSS,
    N_QUERIES,
    N_RESTARTS,
    P_INIT,
    RESC_SCHEDULE,
    p_selection,
    square,
    square_cost,
    square_size,
    square_with_mask,
)
from tests.small_models import mislabelled_batch, predict

pytestmark = pytest.mark.usefixtures("one_thread")

torchattacks = pytest.importorskip("torchattacks")

EPS = 8 / 255
N, Q = 32, 100  # points, queries per run
N_WRONG = 4  # the first points get a wrong label: misclassified on x
# AutoAttack's standard version (fra31/auto-attack, autoattack.py): SquareAttack(p_init=.8, n_queries=5000,
# n_restarts=1, resc_schedule=False), loss left at its default 'margin'; set_version('standard') keeps 5000.
AUTOATTACK_STANDARD = {
    "n_queries": 5000,
    "p_init": 0.8,
    "n_restarts": 1,
    "loss": "margin",
    "resc_schedule": False,
}


@pytest.fixture(scope="module")
def setup() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """(small CNN in eval mode with BN statistics of random images, 32 random 3×16×16 images, labels).

    Labels are the model's predictions except for the first 4 points; some rows are saturated so that the
    [0, 1] clip binds."""
    return mislabelled_batch(N, N_WRONG, bright_rows=2, dark_rows=2)


def reference(model: nn.Module, eps: float = EPS, **settings) -> torchattacks.Square:
    return torchattacks.Square(model, norm="Linf", eps=eps, p_init=0.8, seed=0, **settings)


@pytest.mark.parametrize(
    ("resc_schedule", "loss", "n_restarts"),
    [(False, "margin", 1), (True, "margin", 1), (True, "ce", 1), (True, "margin", 2)],
)
def test_matches_torchattacks_point_by_point(setup, resc_schedule, loss, n_restarts):
    model, x, y = setup
    kw = {"n_queries": Q, "n_restarts": n_restarts, "loss": loss, "resc_schedule": resc_schedule}
    with torch.random.fork_rng(devices=[]):  # the reference reseeds torch's global RNG
        ref_adv = reference(model, **kw)(x, y)
    x_adv, robust, queries = square_with_mask(model, x, y, eps=EPS, seed=0, **kw)
    assert torch.equal(x_adv, ref_adv)
    assert torch.equal(robust, predict(model, ref_adv) == y)
    correct = predict(model, x) == y
    assert 0 < robust.sum() < correct.sum() - 2  # a mix: several points fooled, several robust
    if n_restarts == 1:  # the reference's own count, from its single run on the points correct on x
        ref = reference(model, **kw)
        ref.init_hyperparam(x)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            ref_queries, _ = ref.attack_single_run(x[correct], y[correct])
        assert queries[correct].tolist() == ref_queries.long().tolist()
        assert robust.float().mean().item() == (predict(model, ref_adv) == y).float().mean().item()
    else:  # the second restart, drawing on from where the first left the stream, fools a point
        assert (~robust & (queries > Q + 1)).any()


@pytest.mark.parametrize("eps", [EPS, 64 / 255])  # 64/255: every point fooled, the run stops early
def test_generator_stream_matches_the_reference_and_global_rng_is_untouched(setup, eps):
    """After a run (full, or stopped early because every point was fooled) our generator stands where the
    reference leaves torch's global RNG; `seed` and an equally seeded `generator` give the same result."""
    model, x, y = setup
    with torch.random.fork_rng(devices=[]):
        ref_adv = reference(model, eps=eps, n_queries=Q, resc_schedule=False)(x, y)
        ref_state = torch.get_rng_state()
    before = torch.get_rng_state()
    g = torch.Generator().manual_seed(0)
    x_adv, robust, queries = square_with_mask(model, x, y, eps=eps, n_queries=Q, generator=g)
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.equal(g.get_state(), ref_state)
    assert torch.equal(x_adv, ref_adv)
    assert torch.equal(x_adv, square(model, x, y, eps=eps, n_queries=Q, seed=0))
    stopped_early = not robust.any() and queries.max().item() < Q + 1
    assert stopped_early == (eps > EPS)


def test_settings_are_autoattacks():
    defaults = {
        k: v.default for k, v in inspect.signature(square).parameters.items() if k in AUTOATTACK_STANDARD
    }
    assert defaults == AUTOATTACK_STANDARD
    ours = (N_QUERIES, P_INIT, N_RESTARTS, LOSS, RESC_SCHEDULE)
    assert ours == tuple(AUTOATTACK_STANDARD.values())
    # torchattacks' defaults equal AutoAttack's but for resc_schedule (True): the tests pass it explicitly
    ta = {k: v.default for k, v in inspect.signature(torchattacks.Square).parameters.items()}
    assert {k: ta[k] for k in AUTOATTACK_STANDARD} == {**AUTOATTACK_STANDARD, "resc_schedule": True}
    assert (ta["norm"], ta["seed"]) == ("Linf", 0)
    ref = reference(nn.Linear(2, 2), **{k: v for k, v in AUTOATTACK_STANDARD.items() if k != "p_init"})
    got = (ref.n_queries, ref.p_init, ref.n_restarts, ref.loss, ref.rescale_schedule, ref.norm, ref.eps)
    assert got == (5000, 0.8, 1, "margin", False, "Linf", EPS)


@pytest.mark.parametrize(
    ("it", "n_queries", "resc", "p"),
    [
        (0, 5000, False, 0.8),
        (10, 5000, False, 0.8),
        (11, 5000, False, 0.4),
        (50, 5000, False, 0.4),
        (51, 5000, False, 0.2),
        (201, 5000, False, 0.1),
        (1000, 5000, False, 0.05),
        (1001, 5000, False, 0.025),
        (2001, 5000, False, 0.0125),
        (4999, 5000, False, 0.00625),  # without rescaling a 5,000-query run never reaches /256
        (5, 5000, True, 0.8),  # rescaled: it → 2·it
        (6, 5000, True, 0.4),
        (26, 5000, True, 0.2),
        (4001, 5000, True, 0.8 / 512),
        (1, 100, True, 0.2),  # it → 100·it
        (3, 100, True, 0.1),
        (99, 100, True, 0.8 / 512),
    ],
)
def test_p_selection_hand_values(it, n_queries, resc, p):
    assert p_selection(it, n_queries, 0.8, resc) == pytest.approx(p, rel=1e-15)


def test_schedule_and_square_sizes_equal_the_reference():
    for n_queries in (100, 5000):
        for resc in (False, True):
            ref = reference(nn.Linear(2, 2), n_queries=n_queries, resc_schedule=resc)
            assert [p_selection(i, n_queries, 0.8, resc) for i in range(n_queries)] == [
                ref.p_selection(i) for i in range(n_queries)
            ]
    assert [square_size(p, 3, 16, 16) for p in (0.8, 0.4, 0.1, 0.8 / 512)] == [14, 10, 5, 1]
    assert [square_size(p, 3, 32, 32) for p in (0.8, 0.05, 0.8 / 512)] == [29, 7, 1]
    assert square_size(0.8, 3, 4, 16) == 4  # AutoAttack's clip to min(H, W)


def test_ball_box_and_bookkeeping(setup):
    model, x, y = setup
    x_adv, robust, queries = square_with_mask(model, x, y, eps=EPS, n_queries=Q, seed=3)
    assert x_adv.shape == x.shape
    assert (x_adv - x).abs().max() <= EPS + 1e-6
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    correct = predict(model, x) == y
    assert torch.equal(x_adv[~correct], x[~correct]) and not robust[~correct].any()
    assert (queries[~correct] == 0).all()
    assert torch.equal(x_adv[robust], x[robust]) and (queries[robust] == Q + 1).all()
    fooled = correct & ~robust
    assert fooled.any() and (predict(model, x_adv[fooled]) != y[fooled]).all()
    assert ((queries[fooled] >= 1) & (queries[fooled] <= Q + 1)).all()
    assert (x_adv[fooled] - x[fooled]).abs().amax(dim=(1, 2, 3)).min() > EPS / 2  # perturbed, not clean


def test_square_cost_is_an_upper_bound(setup):
    assert square_cost(5000, 10) == 10 * 5003
    assert square_cost(100, 4, n_restarts=2) == 4 * (1 + 2 * 102)
    model, x, y = setup
    calls = 0

    def count(_module, inputs, _output):
        nonlocal calls
        calls += inputs[0].shape[0]

    handle = model.register_forward_hook(count)
    try:
        square(model, x, y, eps=EPS, n_queries=20, n_restarts=2, seed=0)
    finally:
        handle.remove()
    assert 0 < calls <= square_cost(20, N, n_restarts=2)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"eps": -1.0},
        {"eps": float("nan")},
        {"n_queries": 0},
        {"n_queries": 2.5},
        {"p_init": 0.0},
        {"p_init": 1.5},
        {"loss": "dlr"},
        {"n_restarts": 0},
        {"precision": "fp8"},
    ],
)
def test_bad_arguments_raise_one_line(setup, kwargs):
    model, x, y = setup
    with pytest.raises(AttackError) as err:
        square(model, x, y, **{"eps": EPS, "n_queries": 5, **kwargs})
    assert "\n" not in str(err.value)


def test_bad_shape_raises_one_line(setup):
    model, x, y = setup
    with pytest.raises(AttackError, match="N, C, H, W") as err:
        square(model, x[0], y[:1], eps=EPS, n_queries=5)
    assert "\n" not in str(err.value)
