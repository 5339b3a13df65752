"""Plug-ins from the test folder only: a toy search space (a 2-stage conv net with widths {4, 8} per stage) and a
toy evaluation (accuracy under Gaussian noise, σ ∈ {0.05, 0.1}, key = σ).

Loaded by name in any process with `NARES_PLUGINS=tests.extensions.toy_plugins` (the repository root on the
path). Architecture = (w1, w2), string `w1-w2`; model = conv3×3 3→s·w1, ReLU, conv3×3 stride 2 → s·w2, ReLU,
global average pool, linear → classes (s = the preset's width_base).
"""

from __future__ import annotations

from itertools import product
from typing import Any, ClassVar, NamedTuple

import numpy as np
import pyarrow as pa

from nares.errors import ArchError, shown
from nares.evaluations import register_evaluation
from nares.evaluations.base import FWD, EvalContext, Evaluation, Value, settings_class
from nares.records import pct_from_fraction
from nares.settings import rule
from nares.spaces import SearchSpace, register_space

WIDTHS = (4, 8)


class ToyArch(NamedTuple):
    w1: int
    w2: int


class ToySpace(SearchSpace):
    name = "toy2"
    default_scale = 1
    arch_type = ToyArch
    size = len(WIDTHS) ** 2
    coord_schema: ClassVar = [("w1", pa.int8()), ("w2", pa.int8())]
    references: ClassVar = {"smallest": ToyArch(4, 4), "largest": ToyArch(8, 8)}

    def enumerate(self):
        return (ToyArch(*t) for t in product(WIDTHS, WIDTHS))

    def parse(self, value: Any) -> ToyArch:
        parts = value.split("-") if isinstance(value, str) else value
        try:
            arch = ToyArch(*(int(p) for p in parts))
        except (TypeError, ValueError):
            raise ArchError(f"toy arch {shown(value)} is not of the form W1-W2 (e.g. 4-8)") from None
        if any(w not in WIDTHS for w in arch):
            raise ArchError(f"toy arch {shown(value)}: widths must be in {list(WIDTHS)}")
        return arch

    def format(self, arch: ToyArch) -> str:
        return f"{arch.w1}-{arch.w2}"

    def coords(self, arch: ToyArch) -> dict[str, int]:
        return arch._asdict()

    def neighbours(self, arch: ToyArch) -> list[ToyArch]:
        return [arch._replace(**{k: w}) for k in arch._fields for w in WIDTHS if w != getattr(arch, k)]

    def encode(self, arch: ToyArch) -> np.ndarray:
        return np.array([arch.w1 == 8, arch.w2 == 8], dtype=np.float32)

    def build_model(self, arch: ToyArch, scale: int, num_classes: int = 10):
        from torch import nn

        c1, c2 = scale * arch.w1, scale * arch.w2
        return nn.Sequential(nn.Conv2d(3, c1, 3, padding=1, bias=False), nn.ReLU(),
                             nn.Conv2d(c1, c2, 3, stride=2, padding=1, bias=False), nn.ReLU(),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c2, num_classes))

    def complexity(self, arch: ToyArch, scale: int) -> tuple[int, int]:
        c1, c2 = scale * arch.w1, scale * arch.w2
        return 27 * c1 + 9 * c1 * c2 + 10 * c2 + 10, 27 * c1 * 32**2 + 9 * c1 * c2 * 16**2 + c2 + 10 * c2


register_space(ToySpace())


# -- a toy evaluation: accuracy under Gaussian noise, key = σ -----------------------------------------------------
SIGMAS = (0.05, 0.1)


class GaussianNoise(Evaluation):
    """Top-1 accuracy on x + σ·N(0, 1) clipped to [0, 1], one seeded draw per σ (settings `eval.gauss.sigmas`)."""

    name = "gauss"
    Settings = settings_class("GaussSettings", sigmas=(tuple[float, ...], rule(gt=0.0, nonempty=True, increasing=True)),
                              seed=(int, rule(ge=0)))
    units: ClassVar = {"acc": "percent"}

    def section(self, cfg):
        return {"sigmas": SIGMAS, "seed": 0, **(cfg["eval"].get(self.name) or {})}

    def cost(self, settings, n_images: int) -> float:
        return len(settings.sigmas) * n_images * FWD

    def cell(self, ctx: EvalContext) -> dict[str, Any]:
        import torch

        s = self.settings(ctx.cfg)
        out = {}
        g = torch.Generator(device="cpu").manual_seed(s.seed)
        with torch.no_grad():
            for sigma in s.sigmas:
                noise = torch.randn(ctx.x.shape, generator=g).to(ctx.x.device)
                pred = ctx.model((ctx.x + sigma * noise).clamp(0, 1)).argmax(1)
                out[repr(float(sigma))] = {"acc": float((pred == ctx.y).float().mean())}
        return out

    def values(self, cell) -> list[Value]:
        return [Value("acc", k, pct_from_fraction(v["acc"])) for k, v in cell.items()]


register_evaluation(GaussianNoise())
