"""FAB-T, L∞: the targeted Fast Adaptive Boundary attack (Croce & Hein 2020) as AutoAttack's standard version
runs it (`fab-t`: 100 iterations, 1 restart, 9 target classes, α_max 0.1, η 1.05, β 0.9).

This module owns FAB-T's L∞ step, its projection onto a hyperplane inside the [0, 1] box, its restarts over the
target classes and its cost. It depends on torch only and must not import training, storage (nares.store),
orchestration (Prefect, Ray), evaluations or app code.

The algorithm, as AutoAttack's `fab_base.py` (L∞, targeted branch), on the points classified right on x:
- target classes: for k = 2 … n_target_classes + 1 in turn, the class of the k-th highest logit on x; each
  target runs `n_restarts` times, every run on the points still robust;
- start: x for a target's first run; later runs start at x + (ε/2)·t/‖t‖∞, t ~ U(−1, 1)ⁿ, clipped to [0, 1];
- iteration: with g(z) = Z_target(z) − Z_y(z) linearised at the iterate x_k (value g, gradient ∇), the
  boundary is the hyperplane {z : ∇·z = ∇·x_k − g}. d₁ and d₂ are the smallest L∞ steps from x_k and from x
  onto it inside the box (`linf_projection`), α = min(‖d₁‖∞ / (‖d₁‖∞ + ‖d₂‖∞), α_max) (norms at least 1e-8),
  and x_{k+1} = clip_[0,1]((1 − α)(x_k + η·d₁) + α(x + η·d₂));
- a misclassified iterate is kept when it is the closest to x (L∞) found so far, and the iterate is then
  pulled back towards x: x_{k+1} ← x + β(x_{k+1} − x);
- a point is fooled by a run when its closest adversarial lies within ε of x; it keeps that image.

Random draws: only restarts after a target's first run draw (one `rand` of the attacked points' shape each),
from one CPU `torch.Generator` (the one given, else a fresh one seeded with `seed`): the reference's
`torch.rand` calls on the CPU generator after `torch.manual_seed(seed)`. With AutoAttack's one restart FAB-T
draws nothing and is deterministic.

Host syncs: none inside a run's iterations (the reference makes several per iteration); one per run, selecting
the points still robust.
"""

from __future__ import annotations

import math
from functools import partial

import torch
from torch import nn

from nares.attacks.common import (
    AttackError,
    check_count,
    check_eps,
    check_precision,
    cpu_generator,
    forward,
    loss_and_grad,
    on_robust,
    per_sample,
)

# AutoAttack's standard version: FABAttack_PT(n_iter=100, alpha_max=0.1, eta=1.05, beta=0.9) with set_version
# ('standard'): n_restarts = 1, n_target_classes = 9; run as `fab-t` (targeted).
N_ITER, N_RESTARTS, N_TARGET_CLASSES = 100, 1, 9
ALPHA_MAX, ETA, BETA = 0.1, 1.05, 0.9
MIN_STEP_NORM = 1e-8  # ‖d‖∞ floor in the step's weight α
NOT_FOUND = 1e10  # the distance of a point with no adversarial found yet (the reference's sentinel)
RESTART_SCALE = 0.5  # a restart starts at distance RESTART_SCALE·ε from x


def linf_projection(points: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The displacement d of least ‖d‖∞ with w·(p + d) = b and p + d ∈ [0, 1]ⁿ, per row p of `points` [R, n]
    (hyperplanes w [R, n], b [R]). Where the box does not reach the hyperplane, d goes to the box corner on its
    side (the closest the box gets); coordinates with w = 0 do not move.

    With the hyperplane oriented so that w·p ≥ b, each coordinate lowers w·z fastest by moving to 0 (w_i > 0)
    or 1 (w_i < 0), by at most its room r_i; a step of L∞ size λ lowers w·p by Σ|w_i|·min(λ, r_i), a piecewise
    linear function of λ whose breakpoints are the rooms. The breakpoint bracket of the required decrease is
    found by bisection over the rooms sorted in decreasing order, then λ by solving the linear piece.
    """
    w, b = w.clone(), b.clone()
    side = 2 * ((w * points).sum(1) - b >= 0) - 1  # ±1: orient the hyperplane so that w·p − b ≥ 0
    w = w * side.unsqueeze(1)
    b = b * side
    upward = (w < 0).float()  # 1: the coordinate lowers w·z by rising to 1; 0: by falling to 0
    moves = (w != 0).float()
    corner = (upward - points) * moves  # the full move to the box corner
    room = upward - points * (2 * upward - 1)  # |corner| per coordinate (before masking w = 0)
    ascending = torch.argsort(room, dim=1)
    need = b - (w * points).sum(1)  # the required w·d (≤ 0)
    at_corner = (w * corner).sum(1)  # w·d at the corner: the lowest the box reaches

    descending = ascending.flip((1,))
    w_desc = w.gather(1, descending)
    slope = torch.cumsum(w_desc.abs(), dim=1)  # Σ|w| over the k+1 largest rooms
    level = torch.cumsum(-w_desc * corner.gather(1, descending), dim=1) + at_corner.unsqueeze(1)

    def reached(k: torch.Tensor) -> torch.Tensor:
        """w·d for λ = the (k+1)-th largest room (k: one position per row)."""
        at = k.unsqueeze(1)
        return (level.gather(1, at) - slope.gather(1, at) * room.gather(1, descending.gather(1, at))).squeeze(1)

    n = w.shape[1]
    uniform_step = need - reached(torch.full_like(need, n - 1, dtype=torch.long)) > 0  # λ below every room
    bracketed = (need - at_corner > 0) & ~uniform_step  # reachable: λ between two rooms
    lo = torch.zeros_like(need, dtype=torch.long)
    hi = torch.full_like(lo, n - 1)
    for _ in range(math.ceil(math.log2(n))):  # a fixed count: no host sync
        mid = (lo + hi) // 2
        below = need - reached(mid) > 0  # λ is smaller than room number `mid`
        lo = torch.where(below, mid, lo)
        hi = torch.where(below, hi, mid)

    lam_all = torch.clamp_min((need - level[:, -1]) / (-slope[:, -1]), min=0).unsqueeze(-1)
    at = lo.unsqueeze(1)
    lam = torch.clamp_min((need - level.gather(1, at).squeeze(1)) / (-slope.gather(1, at).squeeze(1)), min=0)
    lam = lam.unsqueeze(-1)
    d_uniform = (2 * upward - 1) * lam_all
    d_bracketed = torch.minimum(lam, corner) * upward + torch.maximum(-lam, corner) * (1 - upward)
    d = torch.where(uniform_step.unsqueeze(1), d_uniform, torch.where(bracketed.unsqueeze(1), d_bracketed, corner))
    return d * moves


def target_gap(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Z_target − Z_y per sample (positive ⇔ the target class beats the true class)."""
    z = logits.float()
    return -(z.gather(1, y[:, None]) - z.gather(1, target[:, None])).squeeze(1)


def fab_targeted(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    n_iter: int = N_ITER,
    n_restarts: int = N_RESTARTS,
    n_target_classes: int = N_TARGET_CLASSES,
    alpha_max: float = ALPHA_MAX,
    eta: float = ETA,
    beta: float = BETA,
    seed: int = 0,
    generator: torch.Generator | None = None,
    precision: str = "fp32",
) -> torch.Tensor:
    """FAB-T (L∞) on images x [N, C, H, W] in [0, 1]: x̂ is the closest adversarial found where it lies within
    ε of x; every other point is returned as x (the reference's output)."""
    x_adv, _ = fab_targeted_with_mask(
        model,
        x,
        y,
        eps=eps,
        n_iter=n_iter,
        n_restarts=n_restarts,
        n_target_classes=n_target_classes,
        alpha_max=alpha_max,
        eta=eta,
        beta=beta,
        seed=seed,
        generator=generator,
        precision=precision,
    )
    return x_adv


def fab_targeted_with_mask(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    n_iter: int = N_ITER,
    n_restarts: int = N_RESTARTS,
    n_target_classes: int = N_TARGET_CLASSES,
    alpha_max: float = ALPHA_MAX,
    eta: float = ETA,
    beta: float = BETA,
    seed: int = 0,
    generator: torch.Generator | None = None,
    precision: str = "fp32",
) -> tuple[torch.Tensor, torch.Tensor]:
    """`fab_targeted`, also returning the robust mask (correct on x and not fooled within ε by any run)."""
    eps = check_eps(eps)
    gen = _check(x, n_iter, n_restarts, n_target_classes, alpha_max, eta, beta, precision, seed, generator)
    run = partial(_fab_run, model, n_iter=int(n_iter), alpha_max=float(alpha_max), eta=float(eta),
                  beta=float(beta), precision=precision)
    x, y = x.detach(), y.detach()
    with torch.no_grad():
        logits = forward(model, x, precision)
        if not 1 <= n_target_classes <= logits.shape[1] - 1:
            raise AttackError(f"n_target_classes={n_target_classes} needs 1..{logits.shape[1] - 1} other classes")
        robust = logits.argmax(dim=1) == y
        x_out = x.clone()

        def attack(xs: torch.Tensor, ys: torch.Tensor, rank: int, restart: int) -> tuple[torch.Tensor, torch.Tensor]:
            ranked = forward(model, xs, precision).sort(dim=-1)[1]  # on x, as the reference: its k-th highest
            start = xs if restart == 0 else _random_start(xs, eps, gen)
            x_run = run(xs, ys, ranked[:, -rank], start)
            still = forward(model, x_run, precision).argmax(dim=1) == ys
            far = (xs - x_run).abs().flatten(1).amax(dim=1) > eps
            fooled = ~(still | far)
            return torch.where(per_sample(fooled, xs.ndim), x_run, xs), ~fooled  # x_out is still x where robust

        for rank in range(2, int(n_target_classes) + 2):
            for restart in range(int(n_restarts)):
                if not on_robust(partial(attack, rank=rank, restart=restart), robust, x_out, x, y):
                    break  # no point left robust
    return x_out, robust


def fab_passes(n_iter: int, n_images: int, n_restarts: int = N_RESTARTS,
               n_target_classes: int = N_TARGET_CLASSES) -> tuple[float, float]:
    """Upper bound on (gradient passes, forward-only passes) of `fab_targeted` over `n_images` images: per image
    1 clean prediction, then per target class and restart 1 ranking forward, `n_iter` × (1 gradient + 1
    prediction) and 1 final check (points fooled earlier are not attacked by later runs)."""
    runs = n_restarts * n_target_classes
    return float(n_images * runs * n_iter), float(n_images * (1 + runs * (n_iter + 2)))


def _fab_run(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    target: torch.Tensor,
    start: torch.Tensor,
    *,
    n_iter: int,
    alpha_max: float,
    eta: float,
    beta: float,
    precision: str,
) -> torch.Tensor:
    """One FAB run toward `target` from `start`: the closest misclassified iterate, x where none was found."""
    b, nd = x.shape[0], x.ndim
    flat = x.reshape(b, -1)
    x_k = start
    x_best = x.clone()
    best = torch.full((b,), NOT_FOUND, device=x.device, dtype=torch.float32)
    gap_fn = partial(target_gap, target=target)
    for _ in range(n_iter):
        gap, _, grad = loss_and_grad(model, x_k, y, gap_fn, precision)
        w = grad.reshape(b, -1)
        offset = -gap + (grad * x_k).reshape(b, -1).sum(dim=-1)  # the linearised boundary: w·z = offset
        d = linf_projection(torch.cat((x_k.reshape(b, -1), flat), 0), torch.cat((w, w), 0),
                            torch.cat((offset, offset), 0))
        d_k, d_x = d[:b].reshape(x.shape), d[b:].reshape(x.shape)
        size = per_sample(torch.clamp_min(d.abs().amax(dim=1, keepdim=True), MIN_STEP_NORM), nd)
        s_k, s_x = size[:b], size[b:]
        alpha = torch.clamp(s_k / (s_k + s_x), min=0.0, max=alpha_max)
        x_k = ((x_k + eta * d_k) * (1 - alpha) + (x + d_x * eta) * alpha).clamp(0.0, 1.0)
        with torch.no_grad():
            fooled = forward(model, x_k, precision).argmax(dim=1) != y
        dist = (x_k - x).reshape(b, -1).abs().amax(dim=1)
        closer = fooled & (dist < best)
        x_best = torch.where(per_sample(closer, nd), x_k, x_best)
        best = torch.where(closer, dist, best)
        x_k = torch.where(per_sample(fooled, nd), x + (x_k - x) * beta, x_k)
    return x_best


def _random_start(x: torch.Tensor, eps: float, generator: torch.Generator) -> torch.Tensor:
    """x + (ε/2)·t/‖t‖∞ with t ~ U(−1, 1) drawn on the CPU (the reference's restart), clipped to [0, 1]."""
    t = (2 * torch.rand(x.shape, generator=generator) - 1).to(device=x.device, dtype=x.dtype)
    radius = per_sample(torch.full((x.shape[0],), eps, device=x.device, dtype=torch.float32), x.ndim)
    peak = per_sample(t.reshape(x.shape[0], -1).abs().amax(dim=1, keepdim=True), x.ndim)
    return (x + radius * t / peak * RESTART_SCALE).clamp(0.0, 1.0)


def _check(
    x: torch.Tensor,
    n_iter: int,
    n_restarts: int,
    n_target_classes: int,
    alpha_max: float,
    eta: float,
    beta: float,
    precision: str,
    seed: int,
    generator: torch.Generator | None,
) -> torch.Generator:
    """Validate the arguments; return the CPU generator restarts draw from."""
    check_precision(precision)
    if x.ndim < 2:
        raise AttackError(f"FAB needs a batch of images [N, ...], got a tensor of shape {tuple(x.shape)}")
    for name, value in (("n_iter", n_iter), ("n_restarts", n_restarts), ("n_target_classes", n_target_classes)):
        check_count(name, value)
    if not 0.0 <= float(alpha_max) <= 1.0:
        raise AttackError(f"alpha_max={alpha_max} must be in [0, 1]")
    if not float(eta) > 0.0:
        raise AttackError(f"eta={eta} must be > 0")
    if not 0.0 < float(beta) <= 1.0:
        raise AttackError(f"beta={beta} must be in (0, 1]")
    return cpu_generator(generator, seed, "FAB draws its restarts")
