"""Memory-aware GPU packing: several small architectures per GPU, each on an actor whose GPU share fits it.

Peak device memory of one PGD-AT training run (what `torch.cuda.max_memory_allocated` reports) is modelled as

    peak_bytes = a + b · batch · activations(arch) + c · params(arch)

where `activations` counts the elements of every block's feature maps for one image (stem + Σ depth · channels ·
H·W per stage) and `params` the weights. `MemoryModel.fit` fits (a, b, c) to measured peaks (the GPU check
writes them, `benchmarks/gpu_check.py`); `MemoryModel.conservative()` is a closed-form upper bound used when no
measurement exists (12 saved fp32 tensors per activation element, 16 bytes per weight for weight, gradient,
momentum and one copy, 1 GiB for the CUDA context and allocator slack).

`plan_shares` turns predicted peaks into actor shares (1, 1/2, 1/4, ... of a GPU): each GPU is split into
equal shares, GPUs go to share sizes in proportion to the work that needs them, and `fits` tells the dispatcher
which actor may take which architecture (its predicted peak within `headroom` of the actor's share).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nares.environment import REPO_ROOT
from nares.spaces.wrn import IMAGE_SIZE, STEM_CHANNELS, Arch, macs, params, stage_channels

GIB = 1024**3


def activation_elements(arch: Arch | str, width_base: int = 16) -> int:
    """Feature-map elements of one image: the stem's plus depth × channels × H × W of each stage."""
    arch = Arch.parse(arch)
    hw, total = IMAGE_SIZE, STEM_CHANNELS * IMAGE_SIZE**2
    for depth, c, stride in zip(arch.depths, stage_channels(arch, width_base), (1, 2, 2), strict=True):
        hw //= stride
        total += depth * c * hw * hw
    return total


def _features(arch: Arch | str, width_base: int, batch: int) -> np.ndarray:
    return np.array([1.0, float(batch * activation_elements(arch, width_base)), float(params(arch, width_base))])


@dataclass(frozen=True)
class MemoryModel:
    """peak_bytes = a + b · batch · activations + c · params (see the module docstring)."""

    a_bytes: float
    b_bytes_per_activation: float
    c_bytes_per_param: float
    source: str = "conservative"

    @classmethod
    def conservative(cls) -> MemoryModel:
        return cls(1.0 * GIB, 12 * 4.0, 16.0, "conservative")

    @classmethod
    def fit(cls, rows: Iterable[dict], source: str = "measured") -> MemoryModel:
        """Non-negative least squares over rows {arch, width_base, batch, peak_bytes} (≥ 1 row). With fewer
        rows than coefficients, the conservative model's proportions are kept and scaled to the data."""
        rows = list(rows)
        if not rows:
            raise ValueError("no measured peaks to fit")
        X = np.stack([_features(r["arch"], r["width_base"], r["batch"]) for r in rows])
        y = np.array([float(r["peak_bytes"]) for r in rows])
        if len(rows) < 3:
            base = cls.conservative()
            scale = float(np.max(y / (X @ np.array([base.a_bytes, base.b_bytes_per_activation, base.c_bytes_per_param]))))
            return cls(base.a_bytes * scale, base.b_bytes_per_activation * scale, base.c_bytes_per_param * scale, source)
        coef = _nnls(X, y)
        # never below a measured peak: shift the constant up by the largest shortfall
        coef[0] += max(0.0, float(np.max(y - X @ coef)))
        return cls(float(coef[0]), float(coef[1]), float(coef[2]), source)

    def peak_bytes(self, arch: Arch | str, width_base: int, batch: int) -> float:
        f = _features(arch, width_base, batch)
        return float(f @ np.array([self.a_bytes, self.b_bytes_per_activation, self.c_bytes_per_param]))

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1) + "\n")

    @classmethod
    def load(cls, path: Path) -> MemoryModel:
        return cls(**json.loads(Path(path).read_text()))


def _nnls(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least squares with non-negative coefficients (active-set over 3 unknowns: try every support)."""
    best, best_err = np.zeros(X.shape[1]), float(np.sum(y**2))
    n = X.shape[1]
    for mask in range(1, 2**n):
        cols = [j for j in range(n) if mask >> j & 1]
        sol, *_ = np.linalg.lstsq(X[:, cols], y, rcond=None)
        if np.any(sol < 0):
            continue
        coef = np.zeros(n)
        coef[cols] = sol
        err = float(np.sum((X @ coef - y) ** 2))
        if err < best_err:
            best, best_err = coef, err
    return best


def share_needed(peak: float, gpu_bytes: float, shares: Sequence[float], headroom: float) -> float | None:
    """The smallest share (a fraction of one GPU) whose memory, × `headroom`, holds `peak`; None: not even one GPU."""
    fitting = [s for s in shares if peak <= s * gpu_bytes * headroom]
    return min(fitting) if fitting else None


def share_grid(max_per_gpu: int) -> list[float]:
    """1, 1/2, 1/4, ... down to 1/`max_per_gpu` (powers of two)."""
    out, k = [], 1
    while k <= max_per_gpu:
        out.append(1.0 / k)
        k *= 2
    return out


@dataclass(frozen=True)
class PackingPlan:
    """Actor shares (GPU fractions, grouped so that each GPU holds equal shares) and the fitting rule."""

    shares: list[float]                 # one per actor
    gpu_bytes: float
    headroom: float
    too_large: dict[str, float]         # arch -> predicted peak bytes, larger than one GPU

    def budget(self, actor: int) -> float:
        return self.shares[actor] * self.gpu_bytes * self.headroom

    def fits(self, actor: int, peak: float | None) -> bool:
        return peak is None or peak <= self.budget(actor)


def plan_shares(peaks: dict[str, float], work: dict[str, float], n_gpus: int, gpu_bytes: float, *,
                max_per_gpu: int = 4, headroom: float = 0.9) -> PackingPlan:
    """Split `n_gpus` GPUs into actor shares for architectures of predicted `peaks` (bytes) and `work` (any cost
    unit, e.g. MACs). Each share size that some architecture needs gets GPUs in proportion to the work needing
    at most it (largest share sizes served first, at least one GPU each while GPUs last); an architecture can
    run on any actor whose share is at least its own. Architectures larger than one GPU are listed apart."""
    grid = share_grid(max_per_gpu)
    need: dict[float, float] = {}
    too_large = {}
    for arch, peak in peaks.items():
        s = share_needed(peak, gpu_bytes, grid, headroom)
        if s is None:
            too_large[arch] = peak
            continue
        need[s] = need.get(s, 0.0) + work.get(arch, 1.0)
    sizes = sorted(need, reverse=True)              # 1, 1/2, ...
    gpus = dict.fromkeys(sizes, 0)
    left = n_gpus
    for s in sizes:                                 # every needed size gets one GPU while GPUs last
        if left:
            gpus[s], left = 1, left - 1
    total = sum(need.values()) or 1.0
    while left:                                     # the rest: the size furthest below its share of the work
        s = max(sizes, key=lambda k: (need[k] / total * n_gpus - gpus[k], k)) if sizes else 1.0
        gpus[s] = gpus.get(s, 0) + 1
        left -= 1
    shares = [s for s in sorted(gpus, reverse=True) for _ in range(gpus[s] * round(1 / s))]
    return PackingPlan(shares, gpu_bytes, headroom, too_large)


def gpu_memory_bytes(pk: Mapping[str, Any]) -> float:
    """One GPU's memory: `sweep.packing.gpu_memory_gib`, else what this process's first CUDA device reports."""
    if pk["gpu_memory_gib"] is not None:
        return float(pk["gpu_memory_gib"]) * GIB
    import torch

    from nares.sweep.selection import SweepError

    if not torch.cuda.is_available():
        raise SweepError("sweep.packing.gpu_memory_gib is null and this driver sees no CUDA device: set it to the "
                         "memory of one of the cluster's GPUs (GiB)")
    return float(torch.cuda.get_device_properties(0).total_memory)


def pack_jobs(cfg: Mapping[str, Any], archs: Iterable[str], n_gpus: int) -> tuple[PackingPlan, dict[str, float]]:
    """The packing of the resolved preset `cfg` (`sweep.packing`) for `archs` on `n_gpus` GPUs, capped at
    `sweep.max_actors` actors, and each architecture's predicted peak bytes (memory model of the preset, else
    the conservative bound; work in MACs at `model.width_base`)."""
    sweep, pk = cfg["sweep"], cfg["sweep"]["packing"]
    gpu_bytes = gpu_memory_bytes(pk)
    model = MemoryModel.load(REPO_ROOT / pk["memory_model"]) if pk["memory_model"] else MemoryModel.conservative()
    wb, batch = cfg["model"]["width_base"], cfg["train"]["batch_size"]
    archs = list(archs)
    peaks = {a: model.peak_bytes(a, wb, batch) for a in archs}
    work = {a: float(macs(a, wb)) for a in archs}
    packing = plan_shares(peaks, work, n_gpus, gpu_bytes, max_per_gpu=pk["max_per_gpu"], headroom=pk["headroom"])
    cap = sweep.get("max_actors") or len(packing.shares)
    return PackingPlan(packing.shares[:cap], packing.gpu_bytes, packing.headroom, packing.too_large), peaks
