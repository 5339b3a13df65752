"""Building blocks shared by the attacks: L∞ projection, autocast forward, input gradients, random starts.

Nothing here synchronises with the host: every helper is a pure tensor op, safe inside a step loop.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from nares.errors import NaresError

PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class AttackError(NaresError, ValueError):
    """A bad attack argument (unknown attack, loss, init or precision; a non-positive budget)."""


def check_precision(precision: str) -> torch.dtype | None:
    """The autocast dtype of `precision` ("fp32" → None)."""
    if precision not in PRECISIONS:
        raise AttackError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    return PRECISIONS[precision]


def check_eps(eps: float) -> float:
    """`eps` as a float, refusing negative or non-finite values."""
    eps = float(eps)
    if not 0.0 <= eps < float("inf"):
        raise AttackError(f"eps={eps} is not a finite non-negative radius (image units, e.g. 8/255)")
    return eps


@contextlib.contextmanager
def autocast(device: torch.device, precision: str) -> Iterator[None]:
    """torch.autocast to the dtype of `precision` on `device`'s type; a no-op for fp32."""
    dtype = check_precision(precision)
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


def forward(model: nn.Module, x: torch.Tensor, precision: str = "fp32") -> torch.Tensor:
    """Logits of `model` on `x` under `precision`, returned in float32."""
    with autocast(x.device, precision):
        logits = model(x)
    return logits.float()


def ce_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-sample cross-entropy in float32."""
    return F.cross_entropy(logits.float(), y, reduction="none")


def loss_and_grad(
    model: nn.Module, x_adv: torch.Tensor, y: torch.Tensor, loss_fn: LossFn, precision: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(per-sample loss, logits, ∇ₓ of the summed loss) at `x_adv`, all detached; parameters get no grad."""
    x_adv = x_adv.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = forward(model, x_adv, precision)
        loss = loss_fn(logits, y)
        (grad,) = torch.autograd.grad(loss.sum(), [x_adv])
    return loss.detach(), logits.detach(), grad.detach()


def project(x_adv: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    """The nearest point of the ε-ball around `x` (L∞) ∩ [0, 1]ⁿ."""
    return torch.clamp(torch.minimum(torch.maximum(x_adv, x - eps), x + eps), 0.0, 1.0)


def uniform(shape: torch.Size, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """U(−1, 1) noise of `shape` on `like`'s device and dtype, drawn from `generator` (else torch's global RNG)."""
    device = generator.device if generator is not None else like.device
    u = torch.rand(shape, generator=generator, device=device, dtype=like.dtype)
    return (2.0 * u - 1.0).to(like.device)


def normal(shape: torch.Size, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """N(0, 1) noise of `shape` on `like`'s device and dtype, drawn from `generator` (else torch's global RNG)."""
    device = generator.device if generator is not None else like.device
    return torch.randn(shape, generator=generator, device=device, dtype=like.dtype).to(like.device)


def per_sample(t: torch.Tensor, ndim: int) -> torch.Tensor:
    """A per-sample vector shaped to broadcast against a batch of `ndim` dimensions."""
    return t.view(-1, *([1] * (ndim - 1)))


def compiled(model: nn.Module, *, compile: bool, cuda_graphs: bool = False, device: torch.device | None = None) -> nn.Module:
    """`model`, or a torch.compile'd module sharing its parameters when `compile` (params.yaml `train.compile`,
    `eval.compile`). Every attack and the training step then run the compiled forward and its gradient graph.
    `cuda_graphs` adds CUDA-graph capture (`mode="reduce-overhead"`) and only applies on a CUDA device."""
    if not compile:
        return model
    graphs = cuda_graphs and device is not None and device.type == "cuda"
    return torch.compile(model, mode="reduce-overhead" if graphs else None)
