"""`nares sweep estimate`: project the device-days of a whole sweep from measured throughput.

Cost model (documented in the README):
1. Measure: on the local device, time a few steps of the trainer's own `nares.train.trainer.train_step` (the
   preset's attack steps + one weight update, with its precision, channels_last and compile settings, batch
   `sweep.estimate.batch_size`) for `sample` architectures spread over the MACs range.
   Each step costs (attack_steps + 1) forward+backward passes per image, so one measurement gives the
   seconds per image-pass of that architecture.
2. Fit: seconds per image-pass = a + b · MACs (least squares over the sample; per-image cost ∝ MACs plus a
   fixed overhead).
3. Count work per architecture in image-passes (a forward-only pass counts 1/3 of a forward+backward):
   training = epochs × (train images × (attack steps + 1) + validation images × (clean + PGD + CW passes)),
   evaluation = Σ over the suite's evaluations of their own cost model (`Evaluation.cost`): for `nares`, test
   images × (clean, FGSM, PGD, CW, APGD-CE on all points + APGD-T × targets on the share `aa_robust_fraction`
   still robust) + corruptions (19 × 5 × images, forward only) when evaluated.
4. Project: Σ over every architecture of the selection of passes × fitted seconds, in device-days.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nares.evaluations import suite_cost
from nares.evaluations.base import FWD  # a forward pass ≈ 1/3 of forward+backward
from nares.spaces.wrn import Arch, ArchIndex, macs

DATASET_SIZES = {"cifar10": {"train": 50_000, "test": 10_000}, "cifar10-subset": {"train": 5_438, "test": 1_017},
                 "cifar10.1": 2_000, "cifar10-c": 10_000}


def _limit(n: int, limit: int | None) -> int:
    return n if limit is None else min(n, int(limit))


def split_sizes(cfg: dict) -> dict[str, int]:
    """Images per split the preset uses (training set after any hold-out; CIFAR-10-C images per cell)."""
    d = cfg["data"]
    n_train = _limit(DATASET_SIZES[d["train"]]["train"], d["train_limit"])
    if d["val"] == "holdout":
        n_val = int(d["val_holdout"])
        n_train -= n_val
    else:
        n_val = _limit(DATASET_SIZES[d["val"]], d["val_limit"])
    n_test = _limit(DATASET_SIZES[d["test"]]["test"], d["test_limit"])
    n_corrupt = _limit(DATASET_SIZES["cifar10-c"], d["corruption_limit"]) if d.get("corruptions") else 0
    return {"train": n_train, "val": n_val, "test": n_test, "corruption_cell": n_corrupt}


def work_passes(cfg: dict, suite: str | None = None) -> dict[str, float]:
    """Forward+backward image-passes per architecture, for the training phase and the evaluation phase (the
    evaluations of `suite`, default the preset's, each by its own cost model: `nares.evaluations`)."""
    n = split_sizes(cfg)
    t, v = cfg["train"], cfg["validation"]
    per_batch = n["train"] // t["batch_size"] * t["batch_size"] if t["drop_last"] else n["train"]
    val = n["val"] * (FWD + (v["pgd"]["steps"] + FWD) + (v["cw"]["steps"] + FWD))
    train = t["epochs"] * (per_batch * (t["attack"]["steps"] + 1) + val)
    evaluation = suite_cost(cfg, {"test": n["test"], "corruptions": n["corruption_cell"]}, suite)
    return {"train": float(train), "eval": float(evaluation)}


def sample_archs(n: int, index: ArchIndex | None = None) -> list[Arch]:
    """`n` architectures evenly spaced in arch id (ids ascend in MACs): smallest, …, largest."""
    index = index or ArchIndex.default()
    ids = np.unique(np.linspace(1, len(index), n).round().astype(int))
    return [index.arch_of(int(i)) for i in ids]


def measure_pass_seconds(arch: Arch, cfg: dict, device: str, *, width_base: int | None = None) -> float:
    """Seconds per forward+backward image-pass of `arch`: the trainer's own `train_step` (its precision,
    channels_last, compile and CUDA-graph settings, the preset's optimizer and attack) timed on random images."""
    import torch

    from nares.spaces.wrn import build_model
    from nares.train.optim import make_optimizer
    from nares.train.runtime import Stopwatch, resolve_device
    from nares.train.trainer import compile_net, train_step

    est, tr = cfg["sweep"]["estimate"], cfg["train"]
    dev = resolve_device(device)
    wb = width_base or cfg["model"]["width_base"]
    fmt = torch.channels_last if tr["channels_last"] else torch.contiguous_format
    torch.manual_seed(0)
    model = build_model(arch, width_base=wb, num_classes=cfg["model"]["num_classes"]).to(dev, memory_format=fmt)
    net = compile_net(model, tr, dev)
    opt = make_optimizer(model, tr)
    scaler = torch.amp.GradScaler(dev.type) if tr["precision"] == "fp16" else None
    g = torch.Generator(device="cpu").manual_seed(0)
    x = torch.rand(est["batch_size"], 3, 32, 32, generator=g).to(dev).contiguous(memory_format=fmt)
    y = torch.randint(0, cfg["model"]["num_classes"], (est["batch_size"],), generator=g).to(dev)
    gen = torch.Generator(device=dev).manual_seed(0)
    with Stopwatch(dev).running():  # warm-up (and compilation), synchronised before the timed steps
        train_step(model, net, x, y, opt, tr, gen, scaler)
    watch = Stopwatch(dev)
    with watch.running():
        for _ in range(est["steps"]):
            train_step(model, net, x, y, opt, tr, gen, scaler)
    return watch.device_seconds / (est["steps"] * est["batch_size"] * (tr["attack"]["steps"] + 1))


def fit_cost(macs_sample: Sequence[float], seconds: Sequence[float]) -> tuple[float, float]:
    """Least-squares (a, b) of seconds = a + b · MACs; with a single point, a = 0."""
    m, s = np.asarray(macs_sample, float), np.asarray(seconds, float)
    if len(m) == 1 or np.ptp(m) == 0:
        return 0.0, float(s.mean() / m.mean())
    b, a = np.polyfit(m, s, 1)
    return float(a), float(b)


def project(cfg: dict, a: float, b: float, archs: Sequence[Arch], suite: str | None = None) -> dict:
    """Device-days of training and evaluation (the evaluations of `suite`, default the preset's) for `archs`
    under the fitted per-pass cost a + b · MACs."""
    wb = cfg["model"]["width_base"]
    m = np.array([macs(x, wb) for x in archs], float)
    per_pass = np.maximum(a + b * m, 0.0)
    work = work_passes(cfg, suite)
    train_days = float((per_pass * work["train"]).sum() / 86_400)
    eval_days = float((per_pass * work["eval"]).sum() / 86_400)
    return {"n_archs": len(archs), "train_device_days": train_days, "eval_device_days": eval_days,
            "total_device_days": train_days + eval_days, "passes_per_arch": work}


def estimate(cfg: dict, *, device: str = "cpu", width_base: int | None = None, sample: int | None = None,
             archs: Sequence[Arch] | None = None, suite: str | None = None) -> dict:
    """Measure, fit and project (see the module docstring). `width_base` lets a slow device time narrower
    copies of the sample (their own MACs enter the fit); the projection always uses the preset's width."""
    est = cfg["sweep"]["estimate"]
    wb = width_base or cfg["model"]["width_base"]
    probe = sample_archs(sample or est["sample"])
    rows = []
    for arch in probe:
        sec = measure_pass_seconds(arch, cfg, device, width_base=wb)
        rows.append({"arch": str(arch), "macs": macs(arch, wb), "seconds_per_pass": sec})
    a, b = fit_cost([r["macs"] for r in rows], [r["seconds_per_pass"] for r in rows])
    out = project(cfg, a, b, archs if archs is not None else [x for _, x in ArchIndex.default()], suite)
    pub = est["published_gpu_days"]
    out.update({"preset": cfg["name"], "suite": suite or cfg["eval"].get("suite") or "nares", "device": device, "probe_width_base": wb, "sample": rows,
                "fit": {"a_seconds": a, "b_seconds_per_mac": b},
                "published_gpu_days": pub,
                "ratio_to_published": {"train": out["train_device_days"] / pub["train"],
                                       "eval": out["eval_device_days"] / pub["eval"]}})
    return out
