"""The FSP indicator of RobNets (PROTOCOL §7.4): the flow-of-solution-procedure matrix of a block,
G(x) = Σ_{s,t} F_in[s,t,:] ⊗ F_out[s,t,:] / (h·w) (m×n), and the FSP distance (1/N) Σ_x ‖G(x) − G(x̂)‖²_F
between clean x and adversarial x̂ (squared Frobenius norm, averaged over the N samples).

Spatial sizes that differ (a stride-2 block): both maps are adaptive-average-pooled to (min h, min w), i.e.
the larger map is pooled to the smaller's size, as common FSP implementations do (`resize="pool"`; not
checked against RobNets' own code); `resize="error"` refuses instead. A block's input is its last positional tensor argument (`input_index=-1`:
the only input of a single-input block, the previous cell's output `s1` of a DARTS/RobNets cell(s0, s1)).
`fsp_distance` runs one forward of the clean and adversarial batch together and reduces each block's two FSP
batches in its hook, so memory holds one block's B×m×n matrices at a time, never all blocks' at once. Which
modules of a network are its blocks is not decided here (`nares.evaluations.fsp` holds each space's rule).

Depends only on torch, `nares.attacks.common` and `nares.proxies.jacobian`; must not import the store,
Prefect, Ray or the app.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from nares.attacks.common import autocast, check_precision
from nares.proxies.jacobian import ProxyError, eval_mode

Resize = Literal["pool", "error"]


def _check_map(name: str, f: Any) -> torch.Tensor:
    if not isinstance(f, torch.Tensor) or f.ndim != 4 or not f.is_floating_point():
        shape = tuple(f.shape) if isinstance(f, torch.Tensor) else type(f).__name__
        raise ProxyError(f"{name} {shape} is not a floating-point feature map (B, C, h, w)")
    return f.float() if f.dtype in (torch.float16, torch.bfloat16) else f


def match_sizes(f_in: torch.Tensor, f_out: torch.Tensor, resize: Resize = "pool") -> tuple[torch.Tensor, torch.Tensor]:
    """`f_in`, `f_out` at a common spatial size (see the module docstring); unchanged when equal."""
    if resize not in ("pool", "error"):
        raise ProxyError(f"resize={resize!r} is not one of pool, error")
    f_in, f_out = _check_map("F_in", f_in), _check_map("F_out", f_out)
    if f_in.shape[0] != f_out.shape[0]:
        raise ProxyError(f"F_in has {f_in.shape[0]} samples, F_out {f_out.shape[0]}")
    if f_in.shape[2:] == f_out.shape[2:]:
        return f_in, f_out
    if resize == "error":
        raise ProxyError(f"F_in is {tuple(f_in.shape[2:])}, F_out {tuple(f_out.shape[2:])} (resize='error')")
    size = (min(f_in.shape[2], f_out.shape[2]), min(f_in.shape[3], f_out.shape[3]))
    pool = [f if tuple(f.shape[2:]) == size else F.adaptive_avg_pool2d(f, size) for f in (f_in, f_out)]
    return pool[0], pool[1]


def fsp_matrix(f_in: torch.Tensor, f_out: torch.Tensor, resize: Resize = "pool") -> torch.Tensor:
    """G (B×m×n) of F_in (B×m×h×w) and F_out (B×n×h×w): G[b, i, j] = mean over positions of F_in[b, i]·F_out[b, j]."""
    f_in, f_out = match_sizes(f_in, f_out, resize)
    h, w = f_in.shape[2:]
    return torch.einsum("bmhw,bnhw->bmn", f_in, f_out) / (h * w)


def fsp_matrix_distance(g: torch.Tensor, g_adv: torch.Tensor) -> float:
    """(1/N) Σ ‖G − Ĝ‖²_F over the N samples of two B×m×n FSP batches, in float64."""
    if not isinstance(g, torch.Tensor) or not isinstance(g_adv, torch.Tensor) or g.ndim != 3 or g.shape != g_adv.shape:
        shapes = [tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__ for t in (g, g_adv)]
        raise ProxyError(f"FSP matrices {shapes[0]} and {shapes[1]} are not two equal (B, m, n) batches")
    return float((g.double() - g_adv.double()).pow(2).sum((1, 2)).mean())


def _block_distances(model: nn.Module, blocks: Sequence[nn.Module], x: torch.Tensor, x_adv: torch.Tensor,
                     input_index: int, resize: Resize, precision: str) -> list[torch.Tensor]:
    """Per block, the B squared distances ‖G(x_i) − G(x̂_i)‖²_F (float64), from one forward of [x; x̂] (samples
    are independent in eval mode): each hook reduces its block's two FSP batches at once, so no block's G is kept."""
    b = x.shape[0]
    found: list[list[torch.Tensor]] = [[] for _ in blocks]

    def hook(k: int):
        def capture(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            tensors = [a for a in args if isinstance(a, torch.Tensor)]
            if not tensors or not -len(tensors) <= input_index < len(tensors):
                raise ProxyError(f"block {k} ({type(module).__name__}) has {len(tensors)} positional tensor "
                                 f"inputs, input_index={input_index}")
            if not isinstance(output, torch.Tensor):
                raise ProxyError(f"block {k} ({type(module).__name__}) returned {type(output).__name__}, not a tensor")
            with torch.autocast(device_type=output.device.type, enabled=False):  # G in float32 or wider
                g = fsp_matrix(tensors[input_index], output, resize)
                found[k].append((g[:b].double() - g[b:].double()).pow(2).sum((1, 2)))
        return capture

    handles = [blk.register_forward_hook(hook(k)) for k, blk in enumerate(blocks)]
    try:
        with torch.no_grad(), autocast(x.device, precision):
            model(torch.cat([x, x_adv]))
    finally:
        for h in handles:
            h.remove()
    for k, ds in enumerate(found):
        if len(ds) != 1:
            raise ProxyError(f"block {k} ({type(blocks[k]).__name__}) ran {len(ds)} times in one forward, not once")
    return [ds[0] for ds in found]


def fsp_distance(
    model: nn.Module,
    blocks: Sequence[nn.Module],
    x: torch.Tensor,
    x_adv: torch.Tensor,
    *,
    input_index: int = -1,
    resize: Resize = "pool",
    precision: str = "fp32",
) -> list[float]:
    """One FSP distance per block of `blocks` (submodules of `model`, each run once per forward) between `x`
    and `x_adv`: (1/B) Σ_i ‖G(x_i) − G(x̂_i)‖²_F over the B samples (`fsp_matrix_distance` of the blocks' FSP
    batches). Forward hooks capture each block's input and output during one forward of the 2B images
    [x; x̂], the model in eval mode, no gradients."""
    check_precision(precision)
    if not blocks or not all(isinstance(b, nn.Module) for b in blocks):
        raise ProxyError(f"blocks must be a non-empty list of nn.Module, got {type(blocks).__name__}")
    if not isinstance(x, torch.Tensor) or not isinstance(x_adv, torch.Tensor) or x.shape != x_adv.shape \
            or x.ndim < 1 or x.shape[0] == 0:
        raise ProxyError("x and x_adv are not two non-empty batches of one shape")
    with eval_mode(model):
        per_sample = _block_distances(model, blocks, x, x_adv, input_index, resize, precision)
    return [float(d.mean()) for d in per_sample]
