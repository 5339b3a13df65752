"""APGD-CE / APGD-DLR, APGD-T and the AA-Compact ensemble (Croce & Hein 2020, AutoAttack's L∞ settings).

The algorithm follows AutoAttack's `autopgd_base.py`:
- start: x + ε·t/‖t‖∞ with t ~ U(−1, 1)ⁿ, clipped to [0, 1]; initial step size 2ε;
- step: z = P(x_k + η·sign(∇)), x_{k+1} = P(x_k + α(z − x_k) + (1 − α)(x_k − x_{k−1})), α = 0.75 (1 on the
  first step), P the projection on the ε-ball ∩ [0, 1];
- checkpoints w_j (`apgd_checkpoints`): at each, a point's step size halves, and the point restarts from
  its best-loss iterate with that iterate's gradient, if the loss rose in at most ρ·(w_j − w_{j−1}) of the
  steps since the last checkpoint, or if its step was not halved at the last checkpoint and its best loss
  has not improved since (the first window compares step 0's loss with 0, as the reference does);
- a point counts as fooled as soon as one iterate is misclassified; that iterate is kept.

The step loop is pure tensor ops: no `.item()`, no Python branch on tensor values, no device→host copy;
the checkpoint schedule depends only on `n_iter`. As in AutoAttack, each run (restart, target class)
attacks only the points still robust: selecting them costs one host sync per run, outside the loop.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from nares.attacks.common import (
    AttackError,
    LossFn,
    ce_loss,
    check_eps,
    check_precision,
    forward,
    loss_and_grad,
    on_robust,
    per_sample,
    project,
    uniform,
)
from nares.attacks.losses import dlr_loss, dlr_targeted_loss

APGD_LOSSES = ("ce", "dlr")
MOMENTUM = 0.75  # α: weight of the new gradient step (1 − α on the previous displacement)
INITIAL_STEP = 2.0  # initial step size, in units of ε
FIRST_CHECKPOINT, MIN_WINDOW, WINDOW_DECREASE = 0.22, 0.06, 0.03  # p₁, and the schedule's 0.06 / 0.03
APGD_CE_KEYS = frozenset({"n_iter", "n_restarts", "rho"})
APGD_T_KEYS = APGD_CE_KEYS | {"n_target_classes"}


def apgd_checkpoints(n_iter: int) -> list[int]:
    """Iteration counts w_j after which APGD checks its step size (AutoAttack's schedule, integer form).

    For n_iter = 100: [22, 41, 57, 70, 80, 87, 93, 99], i.e. p_j·n_iter with p₀ = 0, p₁ = 0.22,
    p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06).
    """
    if n_iter < 1:
        raise AttackError(f"n_iter={n_iter} must be at least 1")
    window = max(int(FIRST_CHECKPOINT * n_iter), 1)
    min_window = max(int(MIN_WINDOW * n_iter), 1)
    decrease = max(int(WINDOW_DECREASE * n_iter), 1)
    out, w = [], window
    while w <= n_iter:
        out.append(w)
        window = max(window - decrease, min_window)
        w += window
    return out


def apgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    n_iter: int = 100,
    n_restarts: int = 1,
    rho: float = 0.75,
    loss: str = "ce",
    generator: torch.Generator | None = None,
    precision: str = "fp32",
) -> torch.Tensor:
    """Untargeted APGD on `loss` ("ce" or "dlr"); x̂ is the fooling iterate where one was found.

    Points misclassified on x are returned as x; points that stay robust as their highest-loss iterate.
    """
    x_adv, _ = apgd_with_mask(
        model,
        x,
        y,
        eps=eps,
        n_iter=n_iter,
        n_restarts=n_restarts,
        rho=rho,
        loss=loss,
        generator=generator,
        precision=precision,
    )
    return x_adv


def apgd_targeted(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    n_iter: int = 100,
    n_restarts: int = 1,
    rho: float = 0.75,
    n_target_classes: int = 9,
    generator: torch.Generator | None = None,
    precision: str = "fp32",
) -> torch.Tensor:
    """APGD-T: APGD on the targeted DLR loss toward each of the `n_target_classes` highest-scoring
    non-true classes on x in turn (each `n_iter` iterations × `n_restarts`), on the points still robust."""
    x_adv, _ = apgd_targeted_with_mask(
        model,
        x,
        y,
        eps=eps,
        n_iter=n_iter,
        n_restarts=n_restarts,
        rho=rho,
        n_target_classes=n_target_classes,
        generator=generator,
        precision=precision,
    )
    return x_adv


def apgd_with_mask(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    n_iter: int = 100,
    n_restarts: int = 1,
    rho: float = 0.75,
    loss: str = "ce",
    generator: torch.Generator | None = None,
    precision: str = "fp32",
) -> tuple[torch.Tensor, torch.Tensor]:
    """`apgd`, also returning the robust mask (correct on x and on every iterate of every restart)."""
    _check_common(eps, n_iter, n_restarts, precision)
    if loss not in APGD_LOSSES:
        raise AttackError(f"APGD loss {loss!r} is not one of {', '.join(APGD_LOSSES)}")
    x, y = x.detach(), y.detach()
    _, robust, x_out = _clean_state(model, x, y, precision)
    _untargeted_runs(
        model,
        x,
        y,
        robust,
        x_out,
        ce_loss if loss == "ce" else dlr_loss,
        eps=eps,
        n_iter=n_iter,
        n_restarts=n_restarts,
        rho=rho,
        generator=generator,
        precision=precision,
    )
    return x_out, robust


def apgd_targeted_with_mask(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    n_iter: int = 100,
    n_restarts: int = 1,
    rho: float = 0.75,
    n_target_classes: int = 9,
    generator: torch.Generator | None = None,
    precision: str = "fp32",
) -> tuple[torch.Tensor, torch.Tensor]:
    """`apgd_targeted`, also returning the robust mask."""
    _check_common(eps, n_iter, n_restarts, precision)
    x, y = x.detach(), y.detach()
    logits, robust, x_out = _clean_state(model, x, y, precision)
    _targeted_runs(
        model,
        x,
        y,
        logits,
        robust,
        x_out,
        eps=eps,
        n_iter=n_iter,
        n_restarts=n_restarts,
        rho=rho,
        n_target_classes=n_target_classes,
        generator=generator,
        precision=precision,
    )
    return x_out, robust


def aa_compact(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    apgd_ce: dict,
    apgd_t: dict,
    generator: torch.Generator | None = None,
    precision: str = "fp32",
) -> tuple[torch.Tensor, torch.Tensor]:
    """AA-Compact: APGD-CE on every point, then APGD-T on the points still robust. Returns (x̂, robust).

    `apgd_ce` holds n_iter, n_restarts, rho; `apgd_t` also n_target_classes (params.yaml `eval.aa`).
    A point is robust only if both attacks fail; x̂ is the successful adversarial where one was found.
    """
    ce = _settings(apgd_ce, APGD_CE_KEYS, "apgd_ce")
    t = _settings(apgd_t, APGD_T_KEYS, "apgd_t")
    _check_common(eps, ce["n_iter"], ce["n_restarts"], precision)
    _check_common(eps, t["n_iter"], t["n_restarts"], precision)
    x, y = x.detach(), y.detach()
    logits, robust, x_out = _clean_state(model, x, y, precision)
    _untargeted_runs(model, x, y, robust, x_out, ce_loss, eps=eps, generator=generator, precision=precision, **ce)
    _targeted_runs(model, x, y, logits, robust, x_out, eps=eps, generator=generator, precision=precision, **t)
    return x_out, robust


def _untargeted_runs(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    robust: torch.Tensor,
    x_out: torch.Tensor,
    loss_fn: LossFn,
    *,
    eps: float,
    n_iter: int,
    n_restarts: int,
    rho: float,
    generator: torch.Generator | None,
    precision: str,
) -> None:
    """`n_restarts` APGD runs on `loss_fn`, each on the points still robust (x_out, robust updated in place)."""
    run = partial(_apgd_run, model, eps=eps, n_iter=n_iter, rho=rho, generator=generator, precision=precision)
    for _ in range(n_restarts):
        on_robust(lambda xs, ys: run(xs, ys, loss_fn), robust, x_out, x, y)


def _targeted_runs(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    logits: torch.Tensor,
    robust: torch.Tensor,
    x_out: torch.Tensor,
    *,
    eps: float,
    n_iter: int,
    n_restarts: int,
    rho: float,
    n_target_classes: int,
    generator: torch.Generator | None,
    precision: str,
) -> None:
    n_classes = logits.shape[1]
    if not 1 <= n_target_classes <= n_classes - 1 or n_classes < 4:
        raise AttackError(
            f"n_target_classes={n_target_classes} needs 1..{n_classes - 1} other classes (≥ 4 classes)"
        )
    ranked = logits.argsort(dim=1, descending=True)  # on x; ranked[:, 0] is y wherever x is classified right
    run = partial(_apgd_run, model, eps=eps, n_iter=n_iter, rho=rho, generator=generator, precision=precision)
    for rank in range(1, n_target_classes + 1):
        for _ in range(n_restarts):
            on_robust(
                lambda xs, ys, ts: run(xs, ys, partial(dlr_targeted_loss, y_target=ts)),
                robust,
                x_out,
                x,
                y,
                ranked[:, rank],
            )


def _apgd_run(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: LossFn,
    *,
    eps: float,
    n_iter: int,
    rho: float,
    generator: torch.Generator | None,
    precision: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One APGD run from a random start. Returns (x̂, robust): the fooling iterate where one was found,
    else the highest-loss iterate; robust = no iterate misclassified."""
    b, nd = x.shape[0], x.ndim
    t = uniform(x.shape, x, generator)
    x_adv = torch.clamp(x + eps * (t / (per_sample(t.abs().flatten(1).amax(dim=1), nd) + 1e-12)), 0.0, 1.0)
    loss, logits, grad = loss_and_grad(model, x_adv, y, loss_fn, precision)
    robust = logits.argmax(dim=1) == y
    x_fool, x_best, grad_best, loss_best = x_adv.clone(), x_adv.clone(), grad.clone(), loss.clone()
    step = torch.full((b,), INITIAL_STEP * eps, device=x.device, dtype=x.dtype)
    history = torch.zeros(n_iter, b, device=x.device, dtype=loss.dtype)
    loss_best_last = loss_best.clone()
    halved_last = torch.ones(b, dtype=torch.bool, device=x.device)
    checks, previous = set(apgd_checkpoints(n_iter)), 0
    x_prev = x_adv
    for i in range(n_iter):
        a = MOMENTUM if i > 0 else 1.0
        z = project(x_adv + per_sample(step, nd) * grad.sign(), x, eps)
        x_new = project(x_adv + a * (z - x_adv) + (1.0 - a) * (x_adv - x_prev), x, eps)
        x_prev, x_adv = x_adv, x_new
        loss, logits, grad = loss_and_grad(model, x_adv, y, loss_fn, precision)
        fooled = logits.argmax(dim=1) != y
        robust &= ~fooled
        x_fool = torch.where(per_sample(fooled, nd), x_adv, x_fool)
        history[i] = loss
        better = loss > loss_best
        x_best = torch.where(per_sample(better, nd), x_adv, x_best)
        grad_best = torch.where(per_sample(better, nd), grad, grad_best)
        loss_best = torch.where(better, loss, loss_best)
        if i + 1 in checks:  # a static schedule: the branch depends on i only
            w = i + 1
            k = w - previous
            # the first window's first step compares with history[-1] (still 0), as the reference does
            before = torch.arange(w - k - 1, w - 1, device=x.device) % n_iter
            rises = (history[w - k : w] > history[before]).sum(dim=0)
            halve = (rises <= k * rho) | (~halved_last & (loss_best_last >= loss_best))
            step = torch.where(halve, step / 2.0, step)
            x_adv = torch.where(per_sample(halve, nd), x_best, x_adv)
            grad = torch.where(per_sample(halve, nd), grad_best, grad)
            halved_last, loss_best_last, previous = halve, loss_best.clone(), w
    return torch.where(per_sample(robust, nd), x_best, x_fool), robust


def _clean_state(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, precision: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(logits on x, robust mask = correct on x, x̂ initialised to x)."""
    with torch.no_grad():
        logits = forward(model, x, precision)
    return logits, logits.argmax(dim=1) == y, x.clone()


def _check_common(eps: float, n_iter: int, n_restarts: int, precision: str) -> None:
    check_eps(eps)
    check_precision(precision)
    apgd_checkpoints(n_iter)
    if n_restarts < 1:
        raise AttackError(f"n_restarts={n_restarts} must be at least 1")


def _settings(given: dict, keys: frozenset[str], name: str) -> dict:
    missing, unknown = keys - set(given), set(given) - keys
    if missing or unknown:
        raise AttackError(
            f"{name} settings {dict(given)} must have exactly the keys {', '.join(sorted(keys))}"
        )
    return {k: (float(v) if k == "rho" else int(v)) for k, v in given.items()}
