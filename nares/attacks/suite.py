"""The evaluation suite of PROTOCOL §3: clean, FGSM, PGD, CW and AA-Compact metrics over a data set.

`evaluate_attacks` owns batching, device placement, the model's eval mode and the per-point masks; the
attacks themselves are functions of (model, x, y, settings). Settings come from a params.yaml section
shaped like `eval` (a shared `eps_255`) or like `validation` (an `eps_255` per attack).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from nares.attacks.apgd import aa_compact
from nares.attacks.common import AttackError, ce_loss, check_precision, forward
from nares.attacks.metrics import LIPSCHITZ_OFFSET, empirical_lipschitz, stable_mask
from nares.attacks.pgd import fgsm, pgd
from nares.errors import ConfigError

ATTACK_NAMES = ("clean", "fgsm", "pgd", "cw", "aa")
_PGD_LOSS = {"pgd": "ce", "cw": "cw"}


@dataclass(frozen=True)
class AttackMetrics:
    """Metrics of one attack over n points; accuracies are fractions in [0, 1].

    acc: robust accuracy (clean accuracy for "clean"); loss: mean cross-entropy on x̂ (on x for "clean");
    stable: share of points whose prediction on x̂ equals that on x; lip: mean empirical Lipschitz
    estimate. stable and lip are None for "clean" and "aa".
    """

    acc: float
    loss: float
    stable: float | None
    lip: float | None
    n: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def attack_settings(cfg: dict, name: str) -> dict[str, Any]:
    """Keyword arguments of attack `name` (eps and steps in [0, 1] image units) read from a cfg section.

    An attack's own `eps_255` overrides the section's.
    """
    if name not in ATTACK_NAMES:
        raise AttackError(f"attack {name!r} is not one of {', '.join(ATTACK_NAMES)}")
    if name == "clean":
        return {}
    sub = cfg.get(name) or {}
    eps_255 = sub.get("eps_255", cfg.get("eps_255"))
    if eps_255 is None:
        raise ConfigError(f"no eps_255 for attack {name!r}: set {name}.eps_255 or eps_255 in the section")
    eps = float(eps_255) / 255
    if name == "fgsm":
        return {"eps": eps, "step": float(sub["step_255"]) / 255 if "step_255" in sub else None}
    if name == "aa":
        return {
            "eps": eps,
            "apgd_ce": dict(_need(sub, "apgd_ce", name)),
            "apgd_t": dict(_need(sub, "apgd_t", name)),
        }
    out = {
        "eps": eps,
        "step": float(_need(sub, "step_255", name)) / 255,
        "steps": int(_need(sub, "steps", name)),
        "loss": _PGD_LOSS[name],
        "init": str(_need(sub, "init", name)),
    }
    if "init_scale_255" in sub:
        out["init_scale"] = float(sub["init_scale_255"]) / 255
    if name == "cw":
        out["kappa"] = float(_need(sub, "kappa", name))
    return out


def evaluate_attacks(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: dict,
    *,
    names: Sequence[str],
    batch_size: int,
    precision: str = "fp32",
    seed: int = 0,
) -> dict[str, AttackMetrics]:
    """Metrics of each attack in `names` (⊆ clean, fgsm, pgd, cw, aa) on (x, y), in eval mode.

    x: uint8 images [N, 3, H, W] (scaled by 1/255) or floats in [0, 1]; y: labels [N]. Batches go to the
    model's device; sums stay there until one transfer at the end. Each attack draws its random starts from
    its own generator seeded from (`seed`, name), so its numbers do not depend on which other attacks run.
    The model's train/eval modes (per module) are restored afterwards.
    """
    names = _check_names(names)
    settings = {name: attack_settings(cfg, name) for name in names}
    offset = float(cfg.get("lipschitz_offset", LIPSCHITZ_OFFSET))
    check_precision(precision)
    if batch_size < 1:
        raise AttackError(f"batch_size={batch_size} must be at least 1")
    if x.ndim != 4 or x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise AttackError(
            f"x {tuple(x.shape)} and y {tuple(y.shape)} must be a non-empty batch [N, C, H, W] and [N]"
        )
    device = _model_device(model)
    generators = {
        name: torch.Generator(device=device).manual_seed(_attack_seed(seed, name)) for name in names
    }
    sums = torch.zeros(len(names), 4, dtype=torch.float64, device=device)  # correct, loss, stable, lip
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        for start in range(0, x.shape[0], batch_size):
            xb = _to_unit(x[start : start + batch_size].to(device))
            yb = y[start : start + batch_size].to(device).long()
            with torch.no_grad():
                logits = forward(model, xb, precision)
            for row, name in enumerate(names):
                sums[row] += _batch_sums(
                    model, xb, yb, logits, name, settings[name], generators[name], precision, offset
                )
    finally:
        for m, training in modes:
            m.train(training)
    totals = sums.cpu().tolist()
    n = int(x.shape[0])
    return {
        name: AttackMetrics(
            acc=t[0] / n,
            loss=t[1] / n,
            stable=None if name in ("clean", "aa") else t[2] / n,
            lip=None if name in ("clean", "aa") else t[3] / n,
            n=n,
        )
        for name, t in zip(names, totals, strict=True)
    }


def _batch_sums(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    logits: torch.Tensor,
    name: str,
    kw: dict,
    generator: torch.Generator,
    precision: str,
    offset: float,
) -> torch.Tensor:
    """[correct, summed CE, stable, summed Lipschitz] of one attack on one batch, on the device."""
    robust = None
    if name == "clean":
        x_adv = x
    elif name == "fgsm":
        x_adv = fgsm(model, x, y, precision=precision, **kw)
    elif name == "aa":
        x_adv, robust = aa_compact(model, x, y, generator=generator, precision=precision, **kw)
    else:
        x_adv = pgd(model, x, y, generator=generator, precision=precision, **kw)
    with torch.no_grad():
        logits_adv = logits if name == "clean" else forward(model, x_adv, precision)
    pred_adv = logits_adv.argmax(dim=1)
    correct = robust if robust is not None else pred_adv == y
    stable = stable_mask(logits.argmax(dim=1), pred_adv)
    lip = empirical_lipschitz(logits, logits_adv, x, x_adv, offset)
    return torch.stack([correct.sum(), ce_loss(logits_adv, y).sum(), stable.sum(), lip.sum()]).double()


def _check_names(names: Sequence[str]) -> list[str]:
    names = list(names)
    bad = [n for n in names if n not in ATTACK_NAMES]
    if bad or not names or len(set(names)) != len(names):
        raise AttackError(f"attack names {names} must be distinct names among {', '.join(ATTACK_NAMES)}")
    return names


def _need(section: dict, key: str, name: str) -> Any:
    if key not in section:
        raise ConfigError(f"attack {name!r} has no {key!r} in its settings {dict(section)}")
    return section[key]


def _to_unit(x: torch.Tensor) -> torch.Tensor:
    return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def _attack_seed(seed: int, name: str) -> int:
    """A 63-bit seed derived from (seed, attack name)."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:8], "big") >> 1
