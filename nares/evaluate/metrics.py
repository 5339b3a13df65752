"""The CIFAR-10-C and complexity cells of PROTOCOL §3 (the attacks' cells: `nares.attacks.suite`)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from nares.attacks.suite import evaluate_attacks


def corruption_cell(model: nn.Module, cfg: dict[str, Any], device: torch.device,
                    channels_last: bool) -> dict[str, dict[str, dict[str, float]]]:
    """{corruption: {"1".."5": {acc, loss}}} over the 19 corruptions × configured severities."""
    from nares.data import iter_corruptions
    from nares.train.validate import as_tensors

    ev = cfg["eval"]
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name, severity, images in iter_corruptions(severities=ev["corruption_severities"],
                                                   limit=cfg["data"]["corruption_limit"]):
        x, y = as_tensors(images, device, channels_last)
        m = evaluate_attacks(model, x, y, ev, names=["clean"], batch_size=ev["batch_size"], precision=ev["precision"],
                             seed=ev["seed"])["clean"]
        out.setdefault(name, {})[str(severity)] = {"acc": float(m.acc), "loss": float(m.loss)}
    return out


def complexity_cell(arch, cfg: dict[str, Any]) -> dict[str, int]:
    """Exact parameter count and MACs of the evaluated model (the preset's space at its width_base)."""
    from nares.spaces import space_for

    wb = cfg["model"]["width_base"]
    n_params, n_macs = space_for(cfg).complexity(arch, wb)
    return {"params": n_params, "macs": n_macs, "width_base": wb}
