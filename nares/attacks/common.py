"""Building blocks shared by the attacks: argument checks, L∞ projection, autocast forward, input gradients,
random starts, the signed-gradient step loop and the restart loop over the points still robust.

Nothing here synchronises with the host but `on_robust`, which selects the points still robust (one sync a
call); every other helper is a pure tensor op, safe inside a step loop.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from numbers import Integral

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


def check_steps(steps: int) -> None:
    """Refuse a negative step count."""
    if steps < 0:
        raise AttackError(f"steps={steps} is negative")


def check_count(name: str, value: int) -> None:
    """Refuse `value` (argument `name`) unless it is an integer ≥ 1 (a bool is not)."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise AttackError(f"{name}={value!r} must be an integer ≥ 1")


def cpu_generator(generator: torch.Generator | None, seed: int, drawer: str) -> torch.Generator:
    """`generator`, else a fresh CPU generator seeded with `seed`; a generator on another device is refused
    (`drawer` names who draws in that message, e.g. "Square draws")."""
    if generator is None:
        return torch.Generator().manual_seed(int(seed))
    if generator.device.type != "cpu":
        raise AttackError(f"{drawer} from a CPU generator (as the reference), got one on {generator.device}")
    return generator


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


def start(
    x: torch.Tensor,
    init: str,
    eps: float,
    generator: torch.Generator | None,
    *,
    inits: tuple[str, ...],
    init_scale: float | None = None,
) -> torch.Tensor:
    """The first iterate of a projected-gradient attack from x, for `init` among the attack's `inits` (a subset
    of "uniform", "gaussian", "none"): "uniform" x + U(−s, s) with s = `init_scale` (default ε), clipped to
    [0, 1]; "gaussian" x + `init_scale`·N(0, 1), unclipped; "none" x. Noise comes from `generator`."""
    if init not in inits:
        raise AttackError(f"init {init!r} is not one of {', '.join(inits)}")
    if init == "uniform":
        scale = eps if init_scale is None else float(init_scale)
        return torch.clamp(x + scale * uniform(x.shape, x, generator), 0.0, 1.0)
    if init == "gaussian":
        if init_scale is None:
            raise AttackError("init='gaussian' needs init_scale (the noise std, image units)")
        return x + float(init_scale) * normal(x.shape, x, generator)
    return x.clone()


def sign_steps(
    model: nn.Module,
    x_adv: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: LossFn,
    *,
    eps: float,
    step: float,
    steps: int,
    precision: str,
) -> torch.Tensor:
    """`steps` signed-gradient steps of size `step` on `loss_fn` (labels y) from x_adv, each projected on the
    ε-ball around x ∩ [0, 1]; a negative `step` descends the loss. The last iterate is projected once more:
    the identity after any step, it guarantees the ball when steps == 0."""
    for _ in range(steps):
        _, _, grad = loss_and_grad(model, x_adv, y, loss_fn, precision)
        x_adv = project(x_adv + step * grad.sign(), x, eps)
    return project(x_adv, x, eps)


def on_robust(
    run: Callable[..., tuple[torch.Tensor, ...]],
    robust: torch.Tensor,
    x_out: torch.Tensor,
    *tensors: torch.Tensor,
    counts: torch.Tensor | None = None,
) -> bool:
    """Run an attack on the points still robust and write its results back in place: `run` takes `tensors` at
    those points and returns (x̂, robust), or (x̂, robust, per-point counts) when `counts` is given; x̂ goes
    into `x_out`, the mask into `robust`, the counts are added to `counts`. False, running nothing, when no
    point is robust.

    Selecting the points is the only host sync of a run (as AutoAttack, which attacks only these)."""
    idx = robust.nonzero().squeeze(1)
    if idx.numel() == 0:
        return False
    out = run(*(t.index_select(0, idx) for t in tensors))
    x_out.index_copy_(0, idx, out[0])
    robust.index_copy_(0, idx, out[1])
    if counts is not None:
        counts.index_add_(0, idx, out[2])
    return True


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
