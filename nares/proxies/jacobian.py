"""The input-Jacobian proxy (PROTOCOL §7.2): ‖J(x)‖_F of the logits w.r.t. the input, by random projections
(Hoffman et al. 2019) or exactly, and the helpers every proxy shares (`ProxyError`, `eval_mode`,
`over_batches`).

Estimator: for v with E[vvᵀ] = I_C, E_v ‖vᵀJ‖² = tr(JᵀJ) = ‖J‖_F², so (1/K) Σ_k ‖v_kᵀJ‖² is an unbiased
estimate of the squared norm. The default draw is Hoffman et al.'s: u uniform on the unit sphere S^{C−1}
(a normalised Gaussian), for which E[uuᵀ] = I/C, scaled to v = √C·u (their `C·‖uᵀJ‖²`); N(0, I) and
Rademacher ±1 draws are offered too (same expectation, larger variance). The square root of the estimate is
consistent, not unbiased (Jensen): use `squared=True` for the unbiased quantity.

Depends only on torch and `nares.attacks.common`; must not import the store, Prefect, Ray or the app.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal

import torch
from torch import nn

from nares.attacks.common import autocast, check_precision
from nares.errors import NaresError

Distribution = Literal["sphere", "normal", "rademacher"]
Reduction = Literal["none", "mean"]
DISTRIBUTIONS = ("sphere", "normal", "rademacher")
REDUCTIONS = ("none", "mean")


class ProxyError(NaresError, ValueError):
    """A bad proxy argument (a non-positive count, an unknown option, a malformed batch or feature map)."""


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """`model` in eval mode (BN running statistics, no dropout: samples are independent), each submodule's own
    training flag restored afterwards."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, training in flags:
            m.training = training


def model_logits(model: nn.Module, x: torch.Tensor, precision: str = "fp32") -> torch.Tensor:
    """Logits of `model` on `x` (B×C): in `x`'s dtype for fp32 (float64 stays float64), float32 under autocast."""
    check_precision(precision)
    with autocast(x.device, precision):
        logits = model(x)
    if logits.ndim != 2 or logits.shape[0] != x.shape[0]:
        raise ProxyError(f"model output has shape {tuple(logits.shape)}, expected logits ({x.shape[0]}, C)")
    return logits if precision == "fp32" else logits.float()


def check_positive(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ProxyError(f"{name}={value!r} is not a positive integer")
    return value


def check_batch(x: torch.Tensor) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.ndim < 2 or x.shape[0] == 0:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ProxyError(f"input {shape} is not a non-empty batch (B, ...)")
    if not x.is_floating_point():
        raise ProxyError(f"input dtype {x.dtype} is not floating point")
    return x


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ProxyError(f"{name}={value!r} is not one of {', '.join(allowed)}")
    return value


def projections(b: int, c: int, like: torch.Tensor, distribution: Distribution,
                generator: torch.Generator | None) -> torch.Tensor:
    """B×C projection vectors with E[vvᵀ] = I_C, in `like`'s dtype and device (see the module docstring)."""
    device = generator.device if generator is not None else like.device
    if distribution == "rademacher":
        v = torch.randint(0, 2, (b, c), generator=generator, device=device).to(like.dtype) * 2 - 1
    else:
        v = torch.randn((b, c), generator=generator, device=device, dtype=like.dtype)
        if distribution == "sphere":
            v = v / v.norm(dim=1, keepdim=True) * math.sqrt(c)
    return v.to(like.device)


def _reduce(sq: torch.Tensor, reduction: Reduction, squared: bool) -> torch.Tensor:
    out = sq if squared else sq.clamp_min(0).sqrt()
    return out.mean() if reduction == "mean" else out


def jacobian_frobenius(
    model: nn.Module,
    x: torch.Tensor,
    *,
    n_projections: int,
    generator: torch.Generator | None = None,
    distribution: Distribution = "sphere",
    reduction: Reduction = "none",
    squared: bool = False,
    precision: str = "fp32",
) -> torch.Tensor:
    """Estimated ‖J(x)‖_F per sample (shape B) of the logits w.r.t. each sample's input, from `n_projections`
    vector-Jacobian products (one backward each; one forward in all), the model in eval mode.

    `reduction="mean"`: the batch mean of the per-sample values (a 0-d tensor); `squared=True`: ‖J‖_F², whose
    estimate is unbiased (with `reduction="mean"` it is Hoffman et al.'s J2, twice their regulariser R).
    Parameters get no `.grad`; the result is detached.
    """
    check_positive("n_projections", n_projections)
    _choice("distribution", distribution, DISTRIBUTIONS)
    _choice("reduction", reduction, REDUCTIONS)
    x = check_batch(x).detach().requires_grad_(True)
    with eval_mode(model), torch.enable_grad():
        logits = model_logits(model, x, precision)
        b, c = logits.shape
        sq = torch.zeros(b, dtype=torch.float64, device=x.device)
        for k in range(n_projections):
            v = projections(b, c, logits, distribution, generator)
            if not logits.requires_grad:  # logits do not depend on x (nor on any parameter): J ≡ 0
                continue
            (vjp,) = torch.autograd.grad(logits, [x], grad_outputs=v, retain_graph=k < n_projections - 1,
                                         allow_unused=True)
            if vjp is not None:  # None: the logits do not depend on x (e.g. a network cut by zero ops), J ≡ 0
                sq += vjp.detach().flatten(1).double().pow(2).sum(1)
    return _reduce(sq / n_projections, reduction, squared).to(x.dtype)


def jacobian_frobenius_exact(
    model: nn.Module, x: torch.Tensor, *, reduction: Reduction = "none", squared: bool = False
) -> torch.Tensor:
    """Exact ‖J(x)‖_F per sample via `torch.autograd.functional.jacobian`, one sample at a time (C×D each: for
    tests and small inputs), the model in eval mode; `reduction` and `squared` as in `jacobian_frobenius`."""
    _choice("reduction", reduction, REDUCTIONS)
    x = check_batch(x).detach()
    sq = torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)

    def f(xi: torch.Tensor) -> torch.Tensor:
        return model_logits(model, xi.unsqueeze(0)).squeeze(0)

    with eval_mode(model), torch.enable_grad():
        for i in range(x.shape[0]):
            jac = torch.autograd.functional.jacobian(f, x[i])
            sq[i] = jac.double().pow(2).sum()
    return _reduce(sq, reduction, squared).to(x.dtype)


def over_batches(fn: Callable[[Any], float | torch.Tensor], batches: Iterable[Any],
                 n_batches: int | None = None) -> float:
    """The unweighted mean of `float(fn(batch))` over `batches` (PROTOCOL §7.2: each proxy on 10 batches ×
    256 images, averaged over batches), taking the first `n_batches` when given (fewer available raises).

    `fn` returns one number per batch, e.g. `lambda b: hessian_top_eigenvalue(model, *b, ...)[0]` or
    `lambda b: jacobian_frobenius(model, b[0], n_projections=1, reduction="mean")`.
    """
    if n_batches is not None:
        check_positive("n_batches", n_batches)
    values: list[float] = []
    for batch in batches:
        if n_batches is not None and len(values) == n_batches:
            break
        values.append(float(fn(batch)))
    if not values or (n_batches is not None and len(values) < n_batches):
        raise ProxyError(f"only {len(values)} batches available, {n_batches or 1} needed")
    return math.fsum(values) / len(values)
