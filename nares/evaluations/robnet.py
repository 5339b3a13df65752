"""The attacks RobNets reports beside FGSM and PGD-20 (PROTOCOL §7.4): PGD-100 (evaluation `pgd100`) and
MI-FGSM (evaluation `mifgsm`), L∞ at `eval.eps_255`.

Each cell holds, as the PROTOCOL §3 attacks: `acc` (robust accuracy), `loss` (mean CE on x̂), `stable` (share of
points whose prediction on x̂ equals that on x) and `lip` (mean empirical Lipschitz estimate with
`eval.lipschitz_offset`), over the test images batched by `eval.batch_size`; random starts come from a device
generator seeded from (eval.seed, name), carried across batches. Must not import the store, Prefect, Ray or the
app.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from nares.evaluations.attacks import AttackEvaluation
from nares.evaluations.base import FWD, EvalContext, settings_class
from nares.settings import EvalInit, rule

_EPS = (float, rule(ge=0))


def attack_cell(ctx: EvalContext, attack: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> dict[str, Any]:
    """{acc, loss, stable, lip, n} of `attack(x, y)` → x̂ over the test images of `ctx` (fractions; sums stay on
    the device until one transfer)."""
    from nares.attacks.common import ce_loss, forward
    from nares.attacks.metrics import LIPSCHITZ_OFFSET, empirical_lipschitz, stable_mask

    ev = ctx.cfg["eval"]
    bs, precision = ev["batch_size"], ev["precision"]
    offset = float(ev.get("lipschitz_offset", LIPSCHITZ_OFFSET))
    sums = torch.zeros(4, dtype=torch.float64, device=ctx.x.device)  # correct, CE, stable, Lipschitz
    for i in range(0, len(ctx.x), bs):
        x, y = ctx.x[i:i + bs], ctx.y[i:i + bs]
        x = x.float() / 255 if x.dtype == torch.uint8 else x
        with torch.no_grad():
            logits = forward(ctx.model, x, precision)
        x_adv = attack(x, y)
        with torch.no_grad():
            logits_adv = forward(ctx.model, x_adv, precision)
        pred = logits_adv.argmax(dim=1)
        sums += torch.stack([(pred == y).sum(), ce_loss(logits_adv, y).sum(),
                             stable_mask(logits.argmax(dim=1), pred).sum(),
                             empirical_lipschitz(logits, logits_adv, x, x_adv, offset).sum()]).double()
    n = len(ctx.x)
    acc, loss, stable, lip = (v / n for v in sums.cpu().tolist())
    return {"acc": acc, "loss": loss, "stable": stable, "lip": lip, "n": n}


class _RobNetAttack(AttackEvaluation):
    """An attack evaluated by `attack_cell` with its typed settings (`attack` builds x̂ of one batch)."""

    def attack_kwargs(self, cfg: Mapping[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def cell(self, ctx: EvalContext) -> dict[str, Any]:
        kwargs = self.attack_kwargs(ctx.cfg)
        g = torch.Generator(device=ctx.x.device).manual_seed(_seed(ctx, self.name))
        precision = ctx.cfg["eval"]["precision"]
        return attack_cell(ctx, lambda x, y: self.attack(ctx.model, x, y, kwargs, generator=g, precision=precision))


class PGD100(_RobNetAttack):
    """PGD-100 as RobNets reports it: `steps` (100) signed-gradient steps of `step_255` (2/255) on CE from a
    uniform start in the ε-ball (the project's PGD, `nares.attacks.pgd.pgd`)."""

    name = "pgd100"
    Settings = settings_class("PGD100Settings", eps_255=_EPS, steps=(int, rule(ge=1)), step_255=(float, rule(gt=0)),
                              init=(EvalInit, None))

    def attack_kwargs(self, cfg: Mapping[str, Any]) -> dict[str, Any]:
        s = self.settings(cfg)
        return {"eps": s.eps_255 / 255, "step": s.step_255 / 255, "steps": s.steps, "init": s.init}

    def cost(self, settings: Any, n_images: int) -> float:
        return n_images * (settings.steps + 2 * FWD)  # + the clean and the adversarial forward pass

    def attack(self, model, x, y, kwargs, *, generator=None, precision="fp32"):
        from nares.attacks.pgd import pgd

        return pgd(model, x, y, generator=generator, precision=precision, **kwargs)


class MIFGSM(_RobNetAttack):
    """MI-FGSM (Dong et al. 2018), L∞, CE loss, from x: `steps` momentum steps of `step_255` with decay μ =
    `decay`. RobNets names the attack without settings; ours follow Dong et al.'s rule α = ε/T with their
    μ = 1.0, at T = 20 iterations (so α = 0.4/255 at ε = 8/255): as many as the suite's PGD-20, and the
    steps sum to ε, so every pixel can reach the ball's edge."""

    name = "mifgsm"
    Settings = settings_class("MIFGSMSettings", eps_255=_EPS, steps=(int, rule(ge=1)), step_255=(float, rule(gt=0)),
                              decay=(float, rule(ge=0)))

    def attack_kwargs(self, cfg: Mapping[str, Any]) -> dict[str, Any]:
        s = self.settings(cfg)
        return {"eps": s.eps_255 / 255, "step": s.step_255 / 255, "steps": s.steps, "decay": s.decay}

    def cost(self, settings: Any, n_images: int) -> float:
        return n_images * (settings.steps + 2 * FWD)

    def attack(self, model, x, y, kwargs, *, generator=None, precision="fp32"):
        from nares.attacks.mifgsm import mifgsm

        return mifgsm(model, x, y, precision=precision, **kwargs)


def _seed(ctx: EvalContext, name: str) -> int:
    from nares.attacks.suite import _attack_seed

    return _attack_seed(ctx.cfg["eval"]["seed"], name)
