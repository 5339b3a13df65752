"""Small models, data and settings shared by the attack and evaluation tests: fast on a CPU, no architecture of
the search space needed."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from nares.config import load_preset


def small_cnn(seed: int = 0, width: int = 8) -> nn.Sequential:
    """Three stride-2 conv-BN-ReLU layers (width, 2·width, 4·width) → global pool → linear, seeded."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    c_in = 3
    for c_out in (width, 2 * width, 4 * width):
        layers += [
            nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(),
        ]
        c_in = c_out
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, 10))


def mislabelled_batch(
    n: int, n_wrong: int, *, bright_rows: int = 0, dark_rows: int = 0
) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """(`small_cnn(0)` in eval mode with the BN statistics of 256 random 3×16×16 images, n random 3×16×16
    images, labels). Labels are the model's predictions but for the first `n_wrong` points (the next class:
    misclassified on x); the top `bright_rows` rows of every image are set to 1 and the bottom `dark_rows` to 0
    (saturated pixels, where the [0, 1] box binds). Everything is drawn from one generator seeded with 1."""
    model = small_cnn(0)
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None  # cumulative average: the statistics of the batch below
    model.train()
    with torch.no_grad():
        model(torch.rand(256, 3, 16, 16, generator=g))
    model.eval()
    x = torch.rand(n, 3, 16, 16, generator=g)
    x[:, :, :bright_rows] = 1.0
    x[:, :, x.shape[2] - dark_rows :] = 0.0
    y = predict(model, x)
    y[:n_wrong] = (y[:n_wrong] + 1) % 10
    return model, x, y


def predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The model's classes on x (no gradient)."""
    with torch.no_grad():
        return model(x).argmax(1)


def preset_with(path: tuple[str, ...], value: Any, preset: str = "full") -> dict:
    """A copy of params.yaml's `preset` with the setting eval.<path> set to `value`, or removed where `value`
    is None."""
    cfg = copy.deepcopy(load_preset(preset))
    section = cfg["eval"]
    for k in path[:-1]:
        section = section[k]
    if value is None:
        del section[path[-1]]
    else:
        section[path[-1]] = value
    return cfg
