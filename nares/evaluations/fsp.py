"""The FSP indicator of RobNets (PROTOCOL §7.4) as the evaluation `fsp`, and the rule, per search space, of which
modules of a network are its blocks (cells).

Per block l, G_l(x) = Σ_{s,t} F_in[s,t,:] ⊗ F_out[s,t,:] / (h·w) and the distance (1/N) Σ_x ‖G_l(x) − G_l(x̂)‖²_F
over the first N test images (`n_images`; all when fewer), x̂ the project's PGD-20 adversarial input (`eval.pgd`
at ε `eval.eps_255`, its uniform start drawn from this evaluation's own generator, seeded from (`eval.seed`,
"fsp")), computed `batch_size` images at a time (`nares.proxies.fsp_distance`: a block's input and output at
different spatial sizes are pooled to the smaller one). Keys: the block index in forward order ("0", "1", ...)
and "mean", the mean over blocks. Metric `distance`, raw.

Which modules are blocks (`fsp_blocks`): a space that defines `fsp_blocks(model)` says so itself; otherwise the
rule registered under the space's name (`register_fsp_blocks`) does. Built-in rules, each in forward order:
- `wrn`: every pre-activation basic block (`nares.models.layers.PreActBlock`) of the three stages; F_in is the
  block's input (before its BN-ReLU), F_out its output (residual sum); not the stem conv nor the head.
- `nb201`: every NB201 cell (`nares.models.nb201.Cell`); not the stem nor the residual reduction blocks between
  stages.
- `robnet`: every RobNet cell (`nares.models.robnet.Cell`), the reduction cells included; F_in is the cell's second
  input s1 (the previous cell's output), F_out the concatenation of its 4 nodes; not the stem nor the head.
A space with neither is refused (one line naming it). The hooks run on the eager module when the evaluated model
is compiled.

Must not import the store, Prefect, Ray or the app.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from nares.errors import ConfigError
from nares.evaluations.attacks import PGD
from nares.evaluations.base import FWD, EvalContext, Evaluation, Value, settings_class
from nares.settings import rule

BlockRule = Callable[[nn.Module], list[nn.Module]]


def _of_type(module_path: str, cls_name: str) -> BlockRule:
    def blocks(model: nn.Module) -> list[nn.Module]:
        import importlib

        cls = getattr(importlib.import_module(module_path), cls_name)
        return [m for m in model.modules() if isinstance(m, cls)]

    blocks.__doc__ = f"every `{module_path}.{cls_name}` of the network, in registration (= forward) order"
    return blocks


_RULES: dict[str, BlockRule] = {
    "wrn": _of_type("nares.models.layers", "PreActBlock"),
    "nb201": _of_type("nares.models.nb201", "Cell"),
    "robnet": _of_type("nares.models.robnet", "Cell"),
}


def register_fsp_blocks(space_name: str, rule_: BlockRule) -> None:
    """Make `rule_(model)` the list of FSP blocks of the networks of space `space_name` (replaces its rule)."""
    if not callable(rule_):
        raise TypeError(f"register_fsp_blocks expects a callable, got {type(rule_).__name__}")
    _RULES[space_name] = rule_


def eager(model: nn.Module) -> nn.Module:
    """The module a `torch.compile` wrapper runs (the model itself when not compiled)."""
    return getattr(model, "_orig_mod", model)


def fsp_blocks(space: Any, model: nn.Module) -> list[nn.Module]:
    """The FSP blocks of `model`, a network of `space` (see the module docstring); ConfigError when the space has
    no rule or the rule finds no block."""
    model = eager(model)
    own = getattr(space, "fsp_blocks", None)
    name = getattr(space, "name", type(space).__name__)
    if callable(own):
        blocks = list(own(model))
    elif name in _RULES:
        blocks = list(_RULES[name](model))
    else:
        raise ConfigError(f"search space {name!r} names no FSP blocks: define fsp_blocks(model) on the space or "
                          "register a rule with nares.evaluations.fsp.register_fsp_blocks")
    if not blocks:
        raise ConfigError(f"the FSP rule of search space {name!r} finds no block in {type(model).__name__}")
    return blocks


class FSPDistance(Evaluation):
    """The FSP distance between clean and PGD-20 inputs per block of the evaluated checkpoint, and its mean."""

    name = "fsp"
    Settings = settings_class("FSPSettings", n_images=(int, rule(ge=1)), batch_size=(int, rule(ge=1)),
                              pgd=(PGD.Settings, None))
    units: ClassVar[Mapping[str, str]] = {"distance": "raw"}

    def section(self, cfg: Mapping[str, Any]) -> dict[str, Any]:
        """`eval.fsp` (`n_images`, `batch_size`) and `pgd`: the settings of the `pgd` evaluation (`eval.pgd`, ε
        `eval.eps_255`), read from there, never a copy in `eval.fsp`."""
        return {**super().section(cfg), "pgd": PGD().section(cfg)}

    def cost(self, settings: Any, n_images: int) -> float:
        """Per image: the PGD steps, then one forward of the clean and one of the adversarial image."""
        return min(n_images, settings.n_images) * (settings.pgd.steps + 2 * FWD)

    def cell(self, ctx: EvalContext) -> dict[str, Any]:
        from nares.attacks.pgd import pgd
        from nares.attacks.suite import _attack_seed, attack_settings
        from nares.proxies import eval_mode, fsp_distance

        s = self.settings(ctx.cfg)
        ev = ctx.cfg["eval"]
        blocks = fsp_blocks(ctx.space, ctx.model)
        kwargs = attack_settings(dict(ev), "pgd")
        n = min(len(ctx.x), s.n_images)
        g = torch.Generator(device=ctx.x.device).manual_seed(_attack_seed(ev["seed"], self.name))
        sums = [0.0] * len(blocks)
        with eval_mode(ctx.model):
            for i in range(0, n, s.batch_size):
                x, y = ctx.x[i:min(n, i + s.batch_size)], ctx.y[i:min(n, i + s.batch_size)]
                x = x.float() / 255 if x.dtype == torch.uint8 else x
                x_adv = pgd(ctx.model, x, y, generator=g, precision=ev["precision"], **kwargs)
                dist = fsp_distance(eager(ctx.model), blocks, x, x_adv, precision=ev["precision"])
                sums = [a + d * len(x) for a, d in zip(sums, dist, strict=True)]
        per_block = [v / n for v in sums]
        return {"blocks": per_block, "mean": sum(per_block) / len(per_block), "n": n}

    def values(self, cell: Mapping[str, Any]) -> list[Value]:
        return [*(Value("distance", str(k), float(v)) for k, v in enumerate(cell["blocks"])),
                Value("distance", "mean", float(cell["mean"]))]
