"""Square attack, L∞ (Andriushchenko et al. 2020), as AutoAttack runs it (PROTOCOL §7.2: 5,000 queries,
p_init 0.8, margin loss, 1 restart).

This module owns the score-based random search of AutoAttack's `square.py` (its L∞ branch; torchattacks'
`Square` is a port of it), its square-size schedule and its cost. It depends on torch only and must not
import training, storage (nares.store), orchestration (Prefect, Ray) or app code.

The algorithm, as the reference's `attack_single_run`, on the points classified right on x:
- start: vertical stripes x̂ = clip_[0,1](x + ε·σ), σ ∈ {−1, +1}^(C×1×W) per point (constant along H);
- iteration i = 0, 1, …: p = `p_selection(i)`, p_init halved after iterations 10, 50, 200, 500, 1000, 2000,
  4000, 6000 and 8000 of a 10,000-query run (with `resc_schedule`, i is first rescaled to
  ⌊i·10,000/n_queries⌋); side s = max(round(√(p·C·H·W / C)), 1), at most min(H, W); one window of s×s at
  (⌊(H − s)·u⌋, ⌊(W − s)·u′⌋) and one sign σ_c per channel, shared by every point of the iteration
  (AutoAttack's batched form); candidate x′ = P(x̂ + 2ε·σ_c on the window), P the projection on the
  ε-ball ∩ [0, 1];
- acceptance: x̂ ← x′ where the loss (margin z_y − max_{i≠y} z_i, or −CE) decreased, or where x′ is
  misclassified (margin ≤ 0); a point stops being attacked once its margin is ≤ 0;
- queries: 1 for the start, plus 1 per iteration in which the point was still attacked;
- result: a point whose final x̂ is misclassified (argmax ≠ y) gets x̂; every other point keeps x (the
  reference's output); each restart attacks the points still robust, from a fresh start.

Random draws. All come from one CPU `torch.Generator` (the one given, else a fresh one seeded with `seed`);
torch's global RNG and device generators are never used or reseeded. Per run: `rand(n, C, 1, W)` for the
stripes (σ = sign(2u − 1)), then per iteration `rand(1)` → row offset, `rand(1)` → column offset,
`rand(C, 1, 1)` → σ. That is the reference's sequence of `torch.rand` calls on the default CPU generator
after `torch.manual_seed(seed)` (it makes no `random` or `np.random` call); a fresh generator seeded with
`seed` yields the same mt19937 stream, so equal seeds give equal draws. A run's per-iteration numbers are
drawn up front as one `rand(n_queries, 2 + C)` (the same numbers as the interleaved calls) and copied to the
device once; a run that stops after k iterations rewinds the generator to just after k iterations' draws,
so a later restart (or caller) sees the stream the reference would.

Host syncs: one per iteration, selecting the points still attacked (`nonzero`), which also decides the early
stop; the reference makes more (two `nonzero`, two device tensors used as slice bounds, a blocking copy of
the signs). Square sizes and window offsets are computed on the host from the pre-drawn numbers. Per run,
one more sync each for selecting the points, copying the draws and the final check.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from nares.attacks.common import (
    AttackError,
    ce_loss,
    check_count,
    check_eps,
    check_precision,
    cpu_generator,
    forward,
    on_robust,
    per_sample,
    project,
)
from nares.attacks.losses import margin

SQUARE_LOSSES = ("margin", "ce")
# AutoAttack's standard version (autoattack.py: SquareAttack(p_init=.8, n_queries=5000, n_restarts=1,
# resc_schedule=False), loss 'margin' by default). torchattacks' Square defaults to resc_schedule=True.
N_QUERIES, P_INIT, N_RESTARTS, LOSS, RESC_SCHEDULE = 5000, 0.8, 1, "margin", False
SCHEDULE_QUERIES = 10_000  # the schedule's breakpoints are iteration counts of a 10,000-query run
P_HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)  # p = p_init / 2^(#breakpoints < it)


def p_selection(
    it: int, n_queries: int = N_QUERIES, p_init: float = P_INIT, resc_schedule: bool = RESC_SCHEDULE
) -> float:
    """The share p of the image covered by iteration `it`'s square (the reference's `p_selection`).

    p_init for it ≤ 10, p_init/2 for 10 < it ≤ 50, /4 to 200, /8 to 500, /16 to 1000, /32 to 2000,
    /64 to 4000, /128 to 6000, /256 to 8000, /512 beyond; with `resc_schedule`, `it` is first rescaled
    to int(it / n_queries · 10,000).
    """
    if resc_schedule:
        it = int(it / n_queries * SCHEDULE_QUERIES)
    return p_init / 2 ** sum(it > t for t in P_HALVINGS)


def square_size(p: float, c: int, h: int, w: int) -> int:
    """Side of the square for share `p` of a C×H×W image: max(round(√(p·C·H·W / C)), 1), ≤ min(H, W)."""
    s = max(round(math.sqrt(p * (c * h * w) / c)), 1)  # round half to even, as the reference
    return min(s, h, w)  # AutoAttack's clip; binds only on non-square images


def square_cost(n_queries: int, n_images: int, n_restarts: int = N_RESTARTS) -> float:
    """Upper bound on the image-forward passes `square` makes over `n_images` images (forward only, no
    gradient): per image 1 clean prediction, then per restart at most n_queries + 1 queries (the start and
    one per iteration while still robust; fooled points stop) and 1 final check: 1 + n_restarts·(n_queries + 2).
    """
    return float(n_images * (1 + n_restarts * (n_queries + 2)))


def square(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    n_queries: int = N_QUERIES,
    p_init: float = P_INIT,
    n_restarts: int = N_RESTARTS,
    loss: str = LOSS,
    resc_schedule: bool = RESC_SCHEDULE,
    seed: int = 0,
    generator: torch.Generator | None = None,
    precision: str = "fp32",
) -> torch.Tensor:
    """L∞ Square attack on images x [N, C, H, W] in [0, 1]; returns x̂ of x's shape in the ε-ball ∩ [0, 1].

    x̂ is the fooling point where one was found; points misclassified on x, and points that stay robust,
    are returned as x (the reference's output). `generator` (CPU) replaces the fresh one seeded with `seed`.
    """
    x_adv, _, _ = square_with_mask(
        model,
        x,
        y,
        eps=eps,
        n_queries=n_queries,
        p_init=p_init,
        n_restarts=n_restarts,
        loss=loss,
        resc_schedule=resc_schedule,
        seed=seed,
        generator=generator,
        precision=precision,
    )
    return x_adv


def square_with_mask(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    n_queries: int = N_QUERIES,
    p_init: float = P_INIT,
    n_restarts: int = N_RESTARTS,
    loss: str = LOSS,
    resc_schedule: bool = RESC_SCHEDULE,
    seed: int = 0,
    generator: torch.Generator | None = None,
    precision: str = "fp32",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`square`, also returning (robust mask, queries).

    robust: correct on x and on the final x̂ of every restart. queries (int64, per point): the queries the
    attack spent on the point, summed over restarts (1 for each start, 1 per iteration attacked; the
    reference's count), 0 for points misclassified on x; the clean prediction and the final checks are
    not counted (`square_cost` does count them).
    """
    eps = check_eps(eps)
    gen = _check(x, n_queries, p_init, n_restarts, loss, precision, seed, generator)
    n_queries, n_restarts, p_init = int(n_queries), int(n_restarts), float(p_init)
    x, y = x.detach(), y.detach()
    with torch.no_grad():
        robust = forward(model, x, precision).argmax(dim=1) == y
        x_out = x.clone()
        queries = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)

        def attack(x_run: torch.Tensor, y_run: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            x_best, q = _square_run(
                model,
                x_run,
                y_run,
                eps=eps,
                n_queries=n_queries,
                p_init=p_init,
                loss=loss,
                resc_schedule=resc_schedule,
                generator=gen,
                precision=precision,
            )
            fooled = forward(model, x_best, precision).argmax(dim=1) != y_run
            return torch.where(per_sample(fooled, x_run.ndim), x_best, x_run), ~fooled, q

        for _ in range(n_restarts):
            if not on_robust(attack, robust, x_out, x, y, counts=queries):
                break
    return x_out, robust, queries


def _square_run(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    n_queries: int,
    p_init: float,
    loss: str,
    resc_schedule: bool,
    generator: torch.Generator,
    precision: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One run from a stripes start on every point of x. Returns (x̂, queries per point)."""
    n, c, h, w = x.shape
    x_best = torch.clamp(x + eps * _signs(torch.rand((n, c, 1, w), generator=generator), x), 0.0, 1.0)
    margin_min, loss_min = _margin_and_loss(model, x_best, y, loss, precision)
    queries = torch.ones(n, dtype=torch.long, device=x.device)

    state = generator.get_state()
    u = torch.rand((n_queries, 2 + c), generator=generator)  # per iteration: row, column, C signs
    sizes = torch.tensor(
        [square_size(p_selection(i, n_queries, p_init, resc_schedule), c, h, w) for i in range(n_queries)]
    )
    rows = ((h - sizes) * u[:, 0]).long().tolist()  # ⌊(H − s)·u⌋ in float32, as the reference
    cols = ((w - sizes) * u[:, 1]).long().tolist()
    deltas = (2.0 * eps) * _signs(u[:, 2:], x).view(n_queries, c, 1, 1)
    sizes_list = sizes.tolist()

    done = n_queries
    for i in range(n_queries):
        attacked = margin_min > 0.0
        idx = attacked.nonzero().squeeze(1)  # the iteration's one host sync
        if idx.numel() == 0:
            done = i
            break
        s, r, col = sizes_list[i], rows[i], cols[i]
        x_curr, x_best_curr = x.index_select(0, idx), x_best.index_select(0, idx)
        x_new = x_best_curr.clone()
        x_new[:, :, r : r + s, col : col + s] += deltas[i]
        x_new = project(x_new, x_curr, eps)
        margin_new, loss_new = _margin_and_loss(model, x_new, y.index_select(0, idx), loss, precision)
        loss_curr, margin_curr = loss_min.index_select(0, idx), margin_min.index_select(0, idx)
        improved = loss_new < loss_curr
        loss_min.index_copy_(0, idx, torch.where(improved, loss_new, loss_curr))
        accept = improved | (margin_new <= 0.0)
        margin_min.index_copy_(0, idx, torch.where(accept, margin_new, margin_curr))
        x_best.index_copy_(0, idx, torch.where(per_sample(accept, x.ndim), x_new, x_best_curr))
        queries += attacked
    if done < n_queries:  # leave the generator where the reference's would be: after `done` iterations
        generator.set_state(state)
        torch.rand(done * (2 + c), generator=generator)
    return x_best, queries


def _margin_and_loss(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: str, precision: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """(margin, loss to minimise): the margin itself, or −CE."""
    logits = forward(model, x, precision)
    m = margin(logits, y)
    return m, (m if loss == "margin" else -ce_loss(logits, y))


def _signs(u: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """sign(2u − 1) of CPU uniforms u, on `like`'s device and dtype (the reference's `random_choice`)."""
    return torch.sign(2.0 * u - 1.0).to(device=like.device, dtype=like.dtype)


def _check(
    x: torch.Tensor,
    n_queries: int,
    p_init: float,
    n_restarts: int,
    loss: str,
    precision: str,
    seed: int,
    generator: torch.Generator | None,
) -> torch.Generator:
    """Validate the arguments; return the CPU generator to draw from."""
    check_precision(precision)
    if x.ndim != 4:
        raise AttackError(f"Square needs images [N, C, H, W], got a tensor of shape {tuple(x.shape)}")
    check_count("n_queries", n_queries)
    if not 0.0 < float(p_init) <= 1.0:
        raise AttackError(f"p_init={p_init} must be in (0, 1]")
    check_count("n_restarts", n_restarts)
    if loss not in SQUARE_LOSSES:
        raise AttackError(f"Square loss {loss!r} is not one of {', '.join(SQUARE_LOSSES)}")
    return cpu_generator(generator, seed, "Square draws")
