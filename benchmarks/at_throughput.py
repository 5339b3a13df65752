"""PGD-AT training and evaluation throughput: a plain reference loop vs the project's trainer, on one device.

    python benchmarks/at_throughput.py                      # GPU: WRN-34-10, smallest and largest, batch 128
    python benchmarks/at_throughput.py --check-precision DIR  # fp32 vs bf16 attacks on a trained run's best checkpoint

(a) `reference`: written the way the published code does it: fp16 autocast with GradScaler, NCHW, per-sample
    random crop/flip on the host CPU (DataLoader-style), a copy to the device per batch, `loss.item()` per batch.
(b) `ours`: `nares.train.trainer.train_epoch` as `nares train` runs it (bf16 autocast, channels_last, the data on
    the device, batched crop/flip, no host sync in the attack loop; torch.compile with --compile).
MFU counts 3 × forward MACs × 2 FLOPs per image per forward+backward, the attack's steps included, against the
device's dense bf16 peak. Without a GPU the script runs a small CPU configuration (labelled CPU; no MFU).
Results go to benchmarks/results/at_throughput_<device>.{json,md} with the command that produced them.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from nares.attacks.common import autocast
from nares.config import load_preset
from nares.spaces.wrn import build_model, macs
from nares.train.optim import make_optimizer
from nares.train.runtime import device_name, resolve_device

RESULTS = Path(__file__).resolve().parent / "results"
GPU_ARCHS = ("5-10-5-10-5-10", "4-8-4-8-4-8", "11-16-11-16-11-16")  # WRN-34-10, smallest, largest
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}  # dense bf16, by device-name substring


def peak_tflops(name: str) -> float | None:
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def load_images(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """HWC uint8 images and labels: the real CIFAR-10 subset when present, else uniform noise."""
    try:
        from nares.data import data_root, read_npz_subset

        x, y = read_npz_subset(data_root() / "cifar10" / "cifar10_prefix_subset.npz")["train"]
        reps = -(-n // len(x))
        return np.concatenate([x] * reps)[:n], np.concatenate([y] * reps)[:n], "cifar10-subset"
    except Exception:
        rng = np.random.default_rng(seed)
        return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n), "noise"


def reference_loop(model, opt, x_hwc, y, batch, steps, eps, step, init_scale, device, precision, clip) -> float:
    """Seconds for one pass over (x, y) in the published style; returns wall time."""
    rng = np.random.default_rng(0)
    amp = precision != "fp32"
    scaler = torch.amp.GradScaler(device.type, enabled=amp)
    perm = rng.permutation(len(x_hwc))
    start = time.perf_counter()
    for b in range(len(x_hwc) // batch):
        idx = perm[b * batch:(b + 1) * batch]
        xs = []
        for i in idx:  # host-side per-sample augmentation, as torchvision transforms in a DataLoader
            img = np.pad(x_hwc[i], ((4, 4), (4, 4), (0, 0)))
            dx, dy = rng.integers(0, 9, 2)
            img = img[dy:dy + 32, dx:dx + 32]
            if rng.random() < 0.5:
                img = img[:, ::-1]
            xs.append(torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float().div(255))
        xb = torch.stack(xs).to(device, non_blocking=True)
        yb = torch.as_tensor(y[idx]).to(device)
        model.eval()
        x_adv = (xb + init_scale * torch.randn_like(xb)).clamp(0, 1)
        for _ in range(steps):
            x_adv.requires_grad_(True)
            with autocast(device, precision):
                loss = F.cross_entropy(model(x_adv), yb)
            loss.backward()
            x_adv = torch.min(torch.max(x_adv.detach() + step * x_adv.grad.sign(), xb - eps), xb + eps).clamp(0, 1)
        model.train()
        with autocast(device, precision):
            loss = F.cross_entropy(model(x_adv), yb)
        opt.zero_grad()
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        scaler.step(opt)
        scaler.update()
        _ = loss.item()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def ours_loop(model, net, opt, images, cfg, device) -> float:
    from tqdm import tqdm

    from nares.data import DeviceBatches
    from nares.train.trainer import train_epoch

    tr = cfg["train"]
    batches = DeviceBatches(images, tr["batch_size"], device=device, shuffle=True, drop_last=True, augment=True,
                            channels_last=tr["channels_last"])
    scaler = torch.amp.GradScaler(device.type) if tr["precision"] == "fp16" else None
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    with tqdm(disable=True) as bar:
        train_epoch(model, net, batches, opt, cfg, 0, device, scaler, bar)  # ends in .item(): synchronised
    return time.perf_counter() - start


def bench_arch(arch: str, args, device, x_hwc, y) -> dict:
    from nares.data import ImageSet

    cfg = load_preset("full")
    tr = cfg["train"]
    tr.update(batch_size=args.batch, precision=args.precision, channels_last=not args.nchw, compile=args.compile)
    tr["attack"]["steps"] = args.attack_steps
    atk = tr["attack"]
    n_warm, n_timed = args.warmup * args.batch, args.batches * args.batch
    flops_img = 3 * 2 * macs(arch, args.width_base) * (args.attack_steps + 1)
    out = {"arch": arch, "width_base": args.width_base, "gmacs_per_image": macs(arch, args.width_base) / 1e9}

    torch.manual_seed(0)
    ref_precision = "fp32" if device.type == "cpu" else "fp16"
    model = build_model(arch, args.width_base).to(device)
    opt = make_optimizer(model, tr)
    kw = {"batch": args.batch, "steps": args.attack_steps, "eps": atk["eps_255"] / 255, "step": atk["step_255"] / 255,
          "init_scale": atk["init_scale_255"] / 255, "device": device, "precision": ref_precision,
          "clip": tr["grad_clip_norm"]}
    reference_loop(model, opt, x_hwc[:n_warm], y[:n_warm], **kw)
    secs = reference_loop(model, opt, x_hwc[n_warm:n_warm + n_timed], y[n_warm:n_warm + n_timed], **kw)
    out["reference"] = {"precision": ref_precision, "images_per_s": n_timed / secs}

    torch.manual_seed(0)
    fmt = torch.channels_last if tr["channels_last"] else torch.contiguous_format
    model = build_model(arch, args.width_base).to(device, memory_format=fmt)
    net = torch.compile(model) if tr["compile"] else model
    opt = make_optimizer(model, tr)
    imgs = ImageSet.from_hwc(x_hwc, y, "bench")
    ours_loop(model, net, opt, imgs.take(slice(0, n_warm)), cfg, device)
    secs = ours_loop(model, net, opt, imgs.take(slice(n_warm, n_warm + n_timed)), cfg, device)
    out["ours"] = {"precision": tr["precision"], "channels_last": tr["channels_last"], "compile": tr["compile"],
                   "images_per_s": n_timed / secs}
    out["speedup"] = out["ours"]["images_per_s"] / out["reference"]["images_per_s"]
    peak = peak_tflops(device_name(device))
    for k in ("reference", "ours"):
        out[k]["mfu"] = out[k]["images_per_s"] * flops_img / (peak * 1e12) if peak else None
    out["eval"] = eval_throughput(net, imgs.take(slice(0, args.eval_images)), cfg, args, device)
    return out


def eval_throughput(model, images, cfg, args, device) -> dict:
    """Images/s of PGD-20 and AA-Compact (`eval` settings; untrained weights: APGD-T only runs on robust points)."""
    from nares.attacks.suite import evaluate_attacks

    ev = cfg["eval"]
    x, y = images.x.to(device), images.y.to(device)
    out = {}
    for name in ("pgd", "aa"):
        evaluate_attacks(model, x[: args.batch], y[: args.batch], ev, names=[name], batch_size=ev["batch_size"],
                         precision=args.precision)
        start = time.perf_counter()
        m = evaluate_attacks(model, x, y, ev, names=[name], batch_size=ev["batch_size"], precision=args.precision)
        out[name] = {"images_per_s": len(y) / (time.perf_counter() - start), "acc": m[name].acc}
    return out


def check_precision(run_dir: Path, args, device) -> dict:
    """Robust accuracy of the best checkpoint under fp32 and under bf16 attacks (same seed, same points)."""
    from nares.attacks.suite import evaluate_attacks
    from nares.data import load_splits
    from nares.evaluate.runner import load_model
    from nares.train.checkpoints import checkpoint_path, read_done

    done = read_done(run_dir)
    cfg = load_preset(done["preset"])
    model = load_model(checkpoint_path(run_dir, "best"), device, channels_last=False)
    test = load_splits(cfg["data"], seed=cfg["train"]["seed"]).test
    ev = cfg["eval"]
    out = {"run": str(run_dir), "arch": done["arch"], "preset": done["preset"], "n": len(test)}
    for precision in ("fp32", "bf16"):
        res = evaluate_attacks(model, test.x, test.y, ev, names=["clean", "pgd", "cw"], batch_size=ev["batch_size"],
                               precision=precision, seed=ev["seed"])
        out[precision] = {k: v.acc for k, v in res.items()}
    out["pgd_diff_points"] = round((out["bf16"]["pgd"] - out["fp32"]["pgd"]) * len(test))
    out["cw_diff_points"] = round((out["bf16"]["cw"] - out["fp32"]["cw"]) * len(test))
    return out


def write_results(tag: str, payload: dict, lines: list[str]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"at_throughput_{tag}.json").write_text(json.dumps(payload, indent=1) + "\n")
    (RESULTS / f"at_throughput_{tag}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--archs", nargs="+", help="default: WRN-34-10, smallest, largest (GPU); 4-8-4-8-4-8 (CPU)")
    p.add_argument("--width-base", type=int, help="default 16 (GPU), 1 (CPU)")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--batches", type=int, help="timed batches per loop (default 20 GPU, 3 CPU)")
    p.add_argument("--warmup", type=int, default=2, help="untimed batches first")
    p.add_argument("--attack-steps", type=int, default=7)
    p.add_argument("--precision", default=None, help="ours: bf16 (GPU default) or fp32 (CPU default)")
    p.add_argument("--nchw", action="store_true", help="ours without channels_last")
    p.add_argument("--compile", action="store_true", help="ours with torch.compile")
    p.add_argument("--eval-images", type=int, help="images for the evaluation throughput (default 1000 GPU, 128 CPU)")
    p.add_argument("--check-precision", type=Path, metavar="RUN_DIR", help="fp32 vs bf16 attack strength on a trained run")
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    gpu = device.type == "cuda"
    name = device_name(device)
    tag = "cpu" if not gpu else name.replace(" ", "_").replace("/", "_")
    command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
    if args.check_precision:
        res = check_precision(args.check_precision, args, device)
        lines = [f"# bf16 vs fp32 attacks ({'CPU' if not gpu else name})", "", f"`{command}`", "",
                 "| attack | fp32 attack acc | bf16 attack acc |", "| --- | --- | --- |"]
        lines += [f"| {k} | {res['fp32'][k]:.4f} | {res['bf16'][k]:.4f} |" for k in ("clean", "pgd", "cw")]
        lines += ["", f"{res['arch']} ({res['preset']}), {res['n']} test images; bf16 − fp32 robust points: "
                  f"PGD {res['pgd_diff_points']:+d}, CW {res['cw_diff_points']:+d}"]
        write_results(f"precision_{tag}", {"command": command, "device": name, **res}, lines)
        return 0
    args.archs = args.archs or (list(GPU_ARCHS) if gpu else ["4-8-4-8-4-8"])
    args.width_base = args.width_base or (16 if gpu else 1)
    args.batches = args.batches or (20 if gpu else 3)
    args.eval_images = args.eval_images or (1000 if gpu else 128)
    args.precision = args.precision or ("bf16" if gpu else "fp32")
    n = (args.warmup + args.batches) * args.batch
    x_hwc, y, source = load_images(max(n, args.eval_images))
    rows = [bench_arch(a, args, device, x_hwc, y) for a in args.archs]
    label = name if gpu else "CPU (small configuration; figures are not GPU figures)"
    lines = [f"# PGD-{args.attack_steps} AT throughput on {label}", "", f"`{command}`", "",
             f"batch {args.batch}, {args.batches} timed batches after {args.warmup} warm-up, data: {source}, "
             f"torch {torch.__version__}", "",
             "| arch | width_base | GMACs/img | reference img/s | ours img/s | speed-up | MFU ref | MFU ours | "
             "eval PGD-20 img/s | eval AA img/s |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        mfu = [f"{r[k]['mfu']:.1%}" if r[k]["mfu"] is not None else "n/a" for k in ("reference", "ours")]
        lines.append(f"| {r['arch']} | {r['width_base']} | {r['gmacs_per_image']:.3f} | "
                     f"{r['reference']['images_per_s']:.1f} | {r['ours']['images_per_s']:.1f} | {r['speedup']:.2f}x | "
                     f"{mfu[0]} | {mfu[1]} | {r['eval']['pgd']['images_per_s']:.1f} | {r['eval']['aa']['images_per_s']:.1f} |")
    write_results(tag, {"command": command, "device": name, "data": source, "torch": torch.__version__,
                        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                        "results": rows}, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
