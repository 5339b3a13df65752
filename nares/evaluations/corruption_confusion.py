"""Confusion and confidence of the CIFAR-10-C cells (PROTOCOL §7.2, Jung et al.): the evaluation `corruptions_cm`.

For each corruption of `corruptions` (Jung et al.'s 15 of CIFAR-10-C's 19) × severity of `severities`, on the
cell's first `data.corruption_limit` images (all when null), from one forward pass per image: accuracy, CE loss,
confusion matrix (rows = true class, columns = predicted), mean softmax by true and by predicted class, mean
confidence of correct and of incorrect predictions: the statistics and rows of the clean and ε cells
(`nares.evaluate.confusion`, through the helpers of `nares.evaluations.spectra`). Keys "<corruption>/<severity>"
for scalars, "<corruption>/<severity>/<true>/<pred>" for matrices. Skipped, like `corruptions`, where the
CIFAR-10-C files are absent.

Must not import the store, Prefect, Ray or the app.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import torch

from nares.constants import CORRUPTIONS
from nares.errors import ConfigError
from nares.evaluations.base import FWD, EvalContext, Evaluation, Value, settings_class
from nares.evaluations.spectra import CONFUSION_UNITS, _cell_values, _confusion_cell
from nares.settings import rule

Corruption = Literal[CORRUPTIONS]  # type: ignore[valid-type]  # one of the 19 names


class CorruptionConfusion(Evaluation):
    """Accuracy, loss, confusion and confidence per corruption × severity (see the module docstring)."""

    name = "corruptions_cm"
    Settings = settings_class("CorruptionConfusionSettings",
                              corruptions=(tuple[Corruption, ...], rule(nonempty=True)),
                              severities=(tuple[int, ...], rule(ge=1, le=5, nonempty=True, increasing=True)))
    units: ClassVar[Mapping[str, str]] = CONFUSION_UNITS
    needs_test = False
    needs_corruptions = True
    cost_images = "corruptions"

    def settings(self, cfg: Mapping[str, Any], where: str = "eval") -> Any:
        s = super().settings(cfg, where)
        twice = sorted({c for c in s.corruptions if s.corruptions.count(c) > 1})
        if twice:
            raise ConfigError(f"{where}.{self.name}.corruptions lists {', '.join(twice)} more than once; expected "
                              "distinct CIFAR-10-C corruption names")
        return s

    def cost(self, settings: Any, n_images: int) -> float:
        """`n_images` (one CIFAR-10-C cell's) per (corruption, severity) cell, forward only."""
        return len(settings.corruptions) * len(settings.severities) * n_images * FWD

    def cell(self, ctx: EvalContext) -> dict[str, Any]:
        from nares.data import iter_corruptions
        from nares.train.validate import as_tensors

        s = self.settings(ctx.cfg)
        device = ctx.device if ctx.device is not None else torch.device("cpu")
        out: dict[str, dict[str, Any]] = {}
        for name, severity, images in iter_corruptions(names=s.corruptions, severities=s.severities,
                                                       limit=ctx.cfg["data"]["corruption_limit"]):
            x, y = as_tensors(images, device, ctx.channels_last)
            here = dataclasses.replace(ctx, x=x, y=y)
            out.setdefault(name, {})[str(severity)] = _confusion_cell(here, lambda xb, yb, eps: xb, 0.0)
        return out

    def values(self, cell: Mapping[str, Any]) -> list[Value]:
        return [v for name, by_severity in cell.items() for severity, c in by_severity.items()
                for v in _cell_values(c, f"{name}/{severity}")]
