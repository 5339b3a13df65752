"""The non-attack evaluations of PROTOCOL §3: CIFAR-10-C corruption accuracy and the exact complexity count."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from nares.constants import CORRUPTIONS
from nares.evaluations.base import FWD, EvalContext, Evaluation, Value, settings_class
from nares.records import pct_from_fraction
from nares.settings import rule


class Corruptions(Evaluation):
    """Clean accuracy and loss per corruption × severity; key "<corruption>/<severity>"."""

    name = "corruptions"
    Settings = settings_class("CorruptionSettings",
                              severities=(tuple[int, ...], rule(ge=1, le=5, nonempty=True, increasing=True)))
    units: ClassVar[Mapping[str, str]] = {"acc": "percent", "loss": "raw"}
    needs_test = False
    needs_corruptions = True

    def section(self, cfg: Mapping[str, Any]) -> dict[str, Any]:
        return {"severities": cfg["eval"]["corruption_severities"]}

    def cost(self, settings, n_images: int) -> float:
        """`n_images` per (corruption, severity) cell, forward only."""
        return len(CORRUPTIONS) * len(settings.severities) * n_images * FWD

    def cell(self, ctx: EvalContext) -> dict[str, Any]:
        from nares.evaluate.metrics import corruption_cell

        return corruption_cell(ctx.model, ctx.cfg, ctx.device, ctx.channels_last)

    def values(self, cell: Mapping[str, Any]) -> list[Value]:
        out = []
        for name, sev in cell.items():
            for s, c in sev.items():
                out.append(Value("acc", f"{name}/{s}", pct_from_fraction(float(c["acc"]))))
                out.append(Value("loss", f"{name}/{s}", float(c["loss"])))
        return out


class Complexity(Evaluation):
    """Exact parameter count and MACs of the evaluated model (the preset's space at `model.width_base`)."""

    name = "complexity"
    Settings = settings_class("ComplexitySettings", width_base=(int, rule(ge=1)))
    units: ClassVar[Mapping[str, str]] = {"params": "count", "macs": "count"}
    needs_model = False
    needs_test = False

    def section(self, cfg: Mapping[str, Any]) -> dict[str, Any]:
        return {"width_base": cfg["model"]["width_base"]}

    def cost(self, settings, n_images: int) -> float:
        return 0.0

    def cell(self, ctx: EvalContext) -> dict[str, Any]:
        from nares.evaluate.metrics import complexity_cell

        return complexity_cell(ctx.arch, ctx.cfg)

    def values(self, cell: Mapping[str, Any]) -> list[Value]:
        return [Value("params", "", float(cell["params"])), Value("macs", "", float(cell["macs"]))]
