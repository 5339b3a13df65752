"""The input-Hessian proxy (PROTOCOL §7.2): the dominant eigenvalue of the Hessian of the cross-entropy loss
w.r.t. the input, by power iteration on Hessian-vector products (double backward through one forward).

Which Hessian (`scope`):
- "sample" (default): each sample's own D×D Hessian H_i = ∇²_{x_i} CE(f(x_i), y_i); the B power iterations
  run together (in eval mode samples are independent, so one double backward of Σ_i CE_i against the
  stacked vectors gives every H_i v_i) and `hessian_top_eigenvalue` returns their mean, which does not
  depend on the batch size.
- "batch": the Hessian of the batch-mean CE w.r.t. the whole B×D batch tensor, as a PyHessian-style loop
  turned to the input computes it: block-diagonal with blocks H_i/B, so its dominant eigenvalue is the
  dominant one over the samples divided by B.

Power iteration finds the eigenvalue of largest magnitude, sign kept (the CE input Hessian is indefinite
in general: its Gauss-Newton part Jᵀ(diag p − ppᵀ)J is PSD, the curvature part Σ_c (p_c − y_c)∇²z_c is
not). The estimate is the Rayleigh quotient vᵀHv of the unit iterate; iteration stops once every relative
change |λ_k − λ_{k−1}| ≤ tol·|λ_{k−1}| (so one iteration never converges). ReLU networks have piecewise-linear
logits: H is then only the Gauss-Newton part (well defined almost everywhere). Run it in fp32 (or float64):
second derivatives under bf16/fp16 autocast are coarse.

Depends only on torch, `nares.attacks.common` and `nares.proxies.jacobian`; must not import the store,
Prefect, Ray or the app.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from nares.attacks.common import normal
from nares.proxies.jacobian import ProxyError, check_batch, check_positive, eval_mode, model_logits

Scope = Literal["sample", "batch"]
SCOPES = ("sample", "batch")


def check_labels(y: torch.Tensor, b: int, c: int) -> torch.Tensor:
    if not isinstance(y, torch.Tensor) or y.shape != (b,) or y.is_floating_point() or y.dtype == torch.bool:
        shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise ProxyError(f"labels {shape} are not {b} integer class indices")
    if b and (int(y.min()) < 0 or int(y.max()) >= c):
        raise ProxyError(f"labels span [{int(y.min())}, {int(y.max())}], outside [0, {c}) for {c} logits")
    return y.long()


def hessian_top_eigenvalues(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    iterations: int,
    tol: float,
    generator: torch.Generator | None = None,
    scope: Scope = "sample",
    precision: str = "fp32",
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(dominant eigenvalues, converged flags, iterations run) of the CE input Hessian: shape B for
    `scope="sample"`, shape 1 for "batch" (see the module docstring). At most `iterations` Hessian-vector
    products from a N(0, I) start drawn from `generator`; parameters get no `.grad`; results detached."""
    check_positive("iterations", iterations)
    if not 0.0 <= float(tol) < float("inf"):
        raise ProxyError(f"tol={tol!r} is not a finite non-negative relative tolerance")
    if scope not in SCOPES:
        raise ProxyError(f"scope={scope!r} is not one of {', '.join(SCOPES)}")
    x = check_batch(x).detach().requires_grad_(True)
    groups = x.shape[0] if scope == "sample" else 1
    with eval_mode(model), torch.enable_grad():
        logits = model_logits(model, x, precision)
        y = check_labels(y, x.shape[0], logits.shape[1])
        loss = F.cross_entropy(logits, y, reduction="sum" if scope == "sample" else "mean")
        (grad,) = torch.autograd.grad(loss, [x], create_graph=True, allow_unused=True) if loss.requires_grad \
            else (None,)
        if grad is None or not grad.requires_grad:  # loss constant in x, or logits affine in x: H ≡ 0
            zeros = torch.zeros(groups, dtype=x.dtype, device=x.device)
            return zeros, torch.ones(groups, dtype=torch.bool, device=x.device), 0
        v = normal(x.shape, x, generator).reshape(groups, -1)
        v = v / v.norm(dim=1, keepdim=True)
        eig: torch.Tensor | None = None
        converged = torch.zeros(groups, dtype=torch.bool, device=x.device)
        run = 0
        while run < iterations:
            run += 1
            (hv,) = torch.autograd.grad(grad, [x], grad_outputs=v.reshape(x.shape), retain_graph=True)
            hv = hv.detach().reshape(groups, -1)
            new = (hv * v).sum(1)
            if eig is not None:
                converged = (new - eig).abs() <= tol * eig.abs()
            eig = new
            norm = hv.norm(dim=1, keepdim=True)
            v = torch.where(norm > 0, hv / norm.clamp_min(torch.finfo(hv.dtype).tiny), v)
            if bool(converged.all()):
                break
    assert eig is not None
    return eig, converged, run


def hessian_top_eigenvalue(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    iterations: int,
    tol: float,
    generator: torch.Generator | None = None,
    scope: Scope = "sample",
    precision: str = "fp32",
) -> tuple[float, bool, int]:
    """(eigenvalue, converged, iterations run): the mean over the batch of the per-sample dominant eigenvalues
    (`scope="sample"`) or the batch Hessian's one ("batch"); `converged` only when every iteration did."""
    eig, converged, k = hessian_top_eigenvalues(
        model, x, y, iterations=iterations, tol=tol, generator=generator, scope=scope, precision=precision)
    return float(eig.double().mean()), bool(converged.all()), k
