"""Gradient-masking checks on hand-made models whose faults are known, and the curve-rise rule by hand."""

from __future__ import annotations

import pandas as pd
import torch
from torch import nn

from nares.evaluations.masking import curve_rise, masking_flags
from nares.validation_long import masking_flags_of
from tests.small_models import small_cnn


class Noisy(nn.Module):
    """Adds fresh noise at every call, even in eval mode (a randomised defence)."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x) + 0.1 * torch.randn(x.shape[0], 10)


class Rounded(nn.Module):
    """Quantises its input: the input gradient is zero everywhere (shattered gradients)."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(torch.round(x * 4) / 4)


def _batch():
    g = torch.Generator().manual_seed(0)
    return torch.rand(16, 3, 32, 32, generator=g), torch.randint(0, 10, (16,), generator=g)


def test_a_plain_model_raises_no_flag():
    x, y = _batch()
    f = masking_flags(small_cnn(), x, y)
    assert f == {"nondeterministic": 0.0, "zero_grad": 0.0, "softmax_output": 0.0}


def test_each_fault_is_flagged():
    x, y = _batch()
    assert masking_flags(Noisy(small_cnn()), x, y)["nondeterministic"] > 1e-3
    assert masking_flags(Rounded(small_cnn()), x, y)["zero_grad"] == 1.0
    assert masking_flags(nn.Sequential(small_cnn(), nn.Softmax(dim=1)), x, y)["softmax_output"] == 1.0


def test_curve_rise_by_hand():
    assert curve_rise([0.5, 0.4, 0.3, 0.0]) == 0.0
    assert abs(curve_rise([0.5, 0.4, 0.45, 0.3, 0.42]) - 0.12) < 1e-12  # the lowest point so far, then a rise
    assert curve_rise([]) == 0.0


def test_the_gate_reports_flags_per_architecture():
    rows = pd.DataFrame({"arch_id": [1, 1, 2, 2, 3], "evaluation": ["masking"] * 4 + ["pgd"],
                         "metric": ["nondeterministic", "eps_not_monotone", "zero_grad", "eps_not_monotone", "acc"],
                         "value": [0.0, 0.5, 0.9, 3.0, 40.0]})
    assert masking_flags_of(rows, tolerance=0.01) == {"2": ["eps_not_monotone", "zero_grad"]}
