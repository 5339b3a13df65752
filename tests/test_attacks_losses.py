"""Attack losses and robustness metrics on hand-computed values (PROTOCOL §3)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nares.attacks import cw_margin_loss, dlr_loss, dlr_targeted_loss, empirical_lipschitz, stable_mask


def test_cw_margin_loss_hand_values():
    logits = torch.tensor([[2.0, 1.0, 0.5], [0.2, 1.5, 0.3], [1.0, 1.0, 0.0]])
    y = torch.tensor([0, 0, 1])
    # margins Z_y − max_{i≠y} Z_i: 1.0, −1.3, 0.0  →  −max(margin, 0): −1, 0, 0
    assert torch.allclose(cw_margin_loss(logits, y), torch.tensor([-1.0, 0.0, 0.0]))
    # κ = 0.5: −max(margin, −0.5): −1, 0.5, 0
    assert torch.allclose(cw_margin_loss(logits, y, kappa=0.5), torch.tensor([-1.0, 0.5, 0.0]))


def test_cw_margin_loss_is_per_sample_and_zero_once_misclassified():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(64, 10, generator=g)
    y = torch.randint(0, 10, (64,), generator=g)
    loss = cw_margin_loss(logits, y)
    assert loss.shape == (64,)
    wrong = logits.argmax(1) != y
    assert torch.all(loss[wrong] == 0) and torch.all(loss[~wrong] <= 0)


def test_dlr_losses_hand_values():
    z = torch.tensor([[3.0, 1.0, 2.0, 0.0], [3.0, 1.0, 2.0, 0.0]])
    # sorted: 3, 2, 1, 0 → π1 − π3 = 2;  π1 − (π3 + π4)/2 = 2.5
    assert torch.allclose(dlr_loss(z, torch.tensor([0, 3])), torch.tensor([-(3 - 2) / 2, -(0 - 3) / 2]))
    got = dlr_targeted_loss(z, torch.tensor([0, 2]), torch.tensor([3, 0]))
    assert torch.allclose(got, torch.tensor([-(3 - 0) / 2.5, -(2 - 3) / 2.5]))


def _reference_dlr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """AutoAttack's sort-based formulation, written independently of the library's."""
    xs, ind = x.sort(dim=1)
    top_is_y = (ind[:, -1] == y).float()
    u = torch.arange(x.shape[0])
    return -(x[u, y] - xs[:, -2] * top_is_y - xs[:, -1] * (1 - top_is_y)) / (xs[:, -1] - xs[:, -3] + 1e-12)


def test_dlr_matches_sorted_formulation_and_is_shift_and_scale_invariant():
    g = torch.Generator().manual_seed(2)
    z = torch.randn(128, 10, generator=g, dtype=torch.float64)
    y = torch.randint(0, 10, (128,), generator=g)
    t = torch.randint(0, 10, (128,), generator=g)
    assert torch.allclose(dlr_loss(z.float(), y).double(), _reference_dlr(z, y), atol=1e-5)
    for loss in (lambda a: dlr_loss(a, y), lambda a: dlr_targeted_loss(a, y, t)):
        assert torch.allclose(loss(z.float()), loss((3.0 * z + 7.0).float()), atol=1e-4)


def test_stable_mask_ignores_correctness():
    pred_clean = torch.tensor([0, 1, 2, 3, 4])
    pred_adv = torch.tensor([0, 2, 2, 1, 4])
    mask = stable_mask(pred_clean, pred_adv)
    assert mask.tolist() == [True, False, True, False, True]
    assert mask.float().mean().item() == pytest.approx(0.6)
    with pytest.raises(ValueError, match="shapes differ"):
        stable_mask(pred_clean, pred_adv[:3])


def test_empirical_lipschitz_of_a_linear_map_has_closed_form():
    g = torch.Generator().manual_seed(3)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 10)).double()
    w = model[1].weight.detach()
    x = torch.rand(6, 3, 4, 4, generator=g, dtype=torch.float64)
    v = torch.randn(6, 3, 4, 4, generator=g, dtype=torch.float64)
    eps = 8 / 255
    x_adv = x + eps * v.sign()
    with torch.no_grad():
        lip = empirical_lipschitz(model(x), model(x_adv), x, x_adv)
    # f(x) − f(x̂) = −W·δ with δ = ε·sign(v); x − x̂ + 1e-6 has largest magnitude ε + 1e-6 (where sign = −1)
    expected = (w @ (eps * v.sign()).flatten(1).T).abs().sum(0) / (eps + 1e-6)
    assert torch.allclose(lip.double(), expected, rtol=1e-5)


def test_lipschitz_offset_is_added_before_the_norm():
    x = torch.zeros(1, 2)
    x_adv = torch.full(
        (1, 2), 0.5
    )  # x − x̂ = −0.5 everywhere: |−0.5 + 0.1| = 0.4 (0.6 if added after the norm)
    logits, logits_adv = torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 0.0]])
    assert empirical_lipschitz(logits, logits_adv, x, x_adv, offset=0.1).item() == pytest.approx(3.0 / 0.4)
