"""The prepared GPU check: every GPU-only figure of the factory in one run (driven by benchmarks/gpu_check.sh).

    python -m benchmarks.gpu_check [--cpu] [--out DIR] [--deadline-s S]

Each section runs in its own subprocess under its own time budget (a crash, a CUDA fault or a hang there is
recorded and the next section runs), writes `<out>/<section>.json` at once, and the summary (`summary.json`,
`summary.md`, with the command line) is rewritten after every section. Sections, in order of priority:

env        torch/CUDA versions, device, nvidia-smi
matmul     the measured dense bf16 matmul rate (TFLOP/s), the MFU denominator
at_eager   PGD-7 AT images/s at batch 128: published-style reference loop vs ours (eager), on WRN-34-10,
           the smallest and the largest architecture; MFU against `matmul`; peak memory per architecture
           (fitted into `memory_model.json`, usable as `sweep.packing.memory_model`)
eval       PGD-20 and AA-Compact images/s (WRN-34-10, untrained weights: APGD-T runs on the robust points only)
sync       the CUDA no-host-sync test (pytest) and the training step under sync-debug mode
estimate   `nares sweep estimate --device cuda`: projected GPU-days of the whole space vs the published 13.1K + 2.9K
packing    the smallest architecture, 1 vs 2 vs 4 training processes on one GPU: total images/s
precision  a small architecture trained briefly on the CIFAR-10 subset, robust accuracy under fp32 vs bf16 attacks
at_compile ours with torch.compile on the same three architectures (compile time reported apart)
cudagraphs the compiled training step with CUDA-graph capture vs eager (losses, weights)

`--cpu`: the same sections with tiny sizes on the CPU (a dry run that proves the script; no GPU figures).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WRN, SMALL, LARGE = "5-10-5-10-5-10", "4-8-4-8-4-8", "11-16-11-16-11-16"
PUBLISHED = {"train": 13100, "eval": 2900}

# (section, budget seconds on GPU, budget on CPU)
SECTIONS = [("env", 30, 60), ("matmul", 30, 60), ("at_eager", 150, 240), ("eval", 45, 180), ("sync", 60, 120),
            ("estimate", 60, 180), ("packing", 90, 180), ("precision", 75, 240), ("at_compile", 150, 300),
            ("cudagraphs", 60, 30)]


def sizes(cpu: bool) -> dict:
    """Problem sizes of each mode."""
    if cpu:
        return {"archs": [SMALL], "width_base": 1, "batch": 32, "batches": 2, "warmup": 1, "matmul_n": 512,
                "eval_images": 32, "pack_batches": 2, "pack_procs": [1, 2], "train_epochs": 2, "train_width": 1,
                "train_limit": 600, "holdout": 100, "test_limit": 64}
    return {"archs": [WRN, SMALL, LARGE], "width_base": 16, "batch": 128, "batches": 8, "warmup": 2, "matmul_n": 8192,
            "eval_images": 1000, "pack_batches": 30, "pack_procs": [1, 2, 4], "train_epochs": 10, "train_width": 4,
            "train_limit": None, "holdout": 500, "test_limit": 1000}


def _device():
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _sync(dev) -> None:
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize()


# ---------------------------------------------------------------- sections (each runs in its own process)

def sec_env(args, s) -> dict:
    import torch

    out = {"torch": torch.__version__, "cuda_build": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
           "python": sys.version.split()[0], "data_dir": os.environ.get("NARES_DATA_DIR")}
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        out.update(device=p.name, memory_gib=p.total_memory / 1024**3, capability=f"{p.major}.{p.minor}",
                   bf16=torch.cuda.is_bf16_supported())
        smi = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=20)
        out["nvidia_smi"] = smi.stdout[-3000:]
    return out


def sec_matmul(args, s) -> dict:
    import torch

    dev = _device()
    n = s["matmul_n"]
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    a, b = torch.randn(n, n, device=dev, dtype=dtype), torch.randn(n, n, device=dev, dtype=dtype)
    for _ in range(3):
        a @ b
    _sync(dev)
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < 2.0 or reps < 5:
        a @ b
        reps += 1
        if reps % 10 == 0:
            _sync(dev)
    _sync(dev)
    sec = time.perf_counter() - t0
    return {"n": n, "dtype": str(dtype), "reps": reps, "tflops": 2 * n**3 * reps / sec / 1e12}


def _at_args(s, compile_: bool):
    return argparse.Namespace(batch=s["batch"], precision="bf16" if _device().type == "cuda" else "fp32", nchw=False,
                              compile=compile_, attack_steps=7, width_base=s["width_base"], warmup=s["warmup"],
                              batches=s["batches"], eval_images=s["eval_images"])


def _matmul_tflops(args) -> float | None:
    f = Path(args.out) / "matmul.json"
    try:
        return json.loads(f.read_text())["result"]["tflops"]
    except (OSError, KeyError, ValueError, TypeError):
        return None


def _at_rows(args, s, compile_: bool, with_reference: bool) -> dict:
    """Images/s of the reference loop (optional) and ours per architecture, MFU vs the measured matmul rate."""
    import torch

    from benchmarks import at_throughput as at
    from nares.config import load_preset
    from nares.data import ImageSet
    from nares.models import build_model
    from nares.spaces.wrn import macs
    from nares.train.optim import make_optimizer
    from nares.train.trainer import compile_net

    dev = _device()
    a = _at_args(s, compile_)
    x_hwc, y, source = at.load_images((a.warmup + a.batches) * a.batch)
    imgs = ImageSet.from_hwc(x_hwc, y, "bench")
    n_warm, n_timed = a.warmup * a.batch, a.batches * a.batch
    tflops = _matmul_tflops(args)
    rows = []
    for arch in s["archs"]:
        cfg = load_preset("full")
        tr = cfg["train"]
        tr.update(batch_size=a.batch, precision=a.precision, channels_last=True, compile=compile_)
        row = {"arch": arch, "width_base": a.width_base, "gmacs_per_image": macs(arch, a.width_base) / 1e9}
        flops_img = 3 * 2 * macs(arch, a.width_base) * (a.attack_steps + 1)
        try:
            if with_reference:
                torch.manual_seed(0)
                model = build_model(arch, a.width_base).to(dev)
                opt = make_optimizer(model, tr)
                kw = {"batch": a.batch, "steps": a.attack_steps, "eps": 8 / 255, "step": 2 / 255,
                      "init_scale": 2 / 255, "device": dev, "precision": "fp16" if dev.type == "cuda" else "fp32",
                      "clip": tr["grad_clip_norm"]}
                at.reference_loop(model, opt, x_hwc[:n_warm], y[:n_warm], **kw)
                sec = at.reference_loop(model, opt, x_hwc[n_warm:n_warm + n_timed], y[n_warm:n_warm + n_timed], **kw)
                row["reference"] = {"precision": kw["precision"], "images_per_s": n_timed / sec}
                del model, opt
            torch.manual_seed(0)
            if dev.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            model = build_model(arch, a.width_base).to(dev, memory_format=torch.channels_last)
            net = compile_net(model, tr, dev)
            opt = make_optimizer(model, tr)
            t0 = time.perf_counter()
            at.ours_loop(model, net, opt, imgs.take(slice(0, n_warm)), cfg, dev)
            warm_s = time.perf_counter() - t0
            sec = at.ours_loop(model, net, opt, imgs.take(slice(n_warm, n_warm + n_timed)), cfg, dev)
            row["ours"] = {"precision": a.precision, "channels_last": True, "compile": compile_,
                           "images_per_s": n_timed / sec, "warmup_s": warm_s}
            if dev.type == "cuda":
                row["peak_bytes"] = torch.cuda.max_memory_allocated()
            for k in ("reference", "ours"):
                if k in row:
                    row[k]["mfu_vs_measured_matmul"] = (row[k]["images_per_s"] * flops_img / (tflops * 1e12)
                                                        if tflops else None)
            if "reference" in row:
                row["speedup"] = row["ours"]["images_per_s"] / row["reference"]["images_per_s"]
            del model, net, opt
        except Exception as e:  # one architecture failing (e.g. out of memory) does not lose the others
            row["error"] = f"{type(e).__name__}: {str(e)[:300]}"
        rows.append(row)
        _write_partial(args, rows)
    return {"data": source, "batch": a.batch, "attack_steps": a.attack_steps, "matmul_tflops": tflops, "rows": rows}


def _scratch(args) -> Path:
    """Working files of the sections (worker hand-offs, the precision run's checkpoints); removed at the end."""
    d = Path(args.out) / "scratch"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _write_partial(args, rows) -> None:
    (_scratch(args) / f"{args.section}.partial.json").write_text(json.dumps(rows, indent=1))


def sec_at_eager(args, s) -> dict:
    from nares.sweep.packing import MemoryModel

    out = _at_rows(args, s, compile_=False, with_reference=True)
    measured = [{"arch": r["arch"], "width_base": r["width_base"], "batch": out["batch"], "peak_bytes": r["peak_bytes"]}
                for r in out["rows"] if "peak_bytes" in r]
    if measured:
        model = MemoryModel.fit(measured, source=f"measured on {_device_label()} (benchmarks/gpu_check.py)")
        model.save(Path(args.out) / "memory_model.json")
        out["memory_model"] = model.__dict__
    return out


def sec_at_compile(args, s) -> dict:
    return _at_rows(args, s, compile_=True, with_reference=False)


def sec_eval(args, s) -> dict:
    import torch

    from benchmarks import at_throughput as at
    from nares.config import load_preset
    from nares.data import ImageSet
    from nares.models import build_model

    dev = _device()
    a = _at_args(s, False)
    x_hwc, y, _ = at.load_images(a.eval_images)
    arch = s["archs"][0]
    torch.manual_seed(0)
    model = build_model(arch, a.width_base).to(dev, memory_format=torch.channels_last).eval()
    res = at.eval_throughput(model, ImageSet.from_hwc(x_hwc, y, "bench"), load_preset("full"), a, dev)
    return {"arch": arch, "width_base": a.width_base, "images": a.eval_images, "precision": a.precision, **res}


def sec_sync(args, s) -> dict:
    import torch

    out: dict = {}
    test = "tests/test_attacks_invariants.py::test_step_loops_do_not_synchronise_on_cuda"
    p = subprocess.run([sys.executable, "-m", "pytest", test, "-q", "-rs", "-p", "no:cacheprovider"], cwd=REPO,
                       capture_output=True, text=True, timeout=max(20, args.budget - 20))
    out["pytest"] = {"test": test, "rc": p.returncode, "tail": p.stdout[-1500:],
                     "skipped": " skipped" in p.stdout and " passed" not in p.stdout}
    if torch.cuda.is_available():
        out["train_step"] = _train_step_no_sync()
    return out


def _train_step_no_sync() -> dict:
    """The training step (bf16, channels_last) under `set_sync_debug_mode("error")`: no host sync inside."""
    import torch

    from nares.config import load_preset
    from nares.models import build_model
    from nares.train.optim import make_optimizer
    from nares.train.trainer import train_step

    tr = load_preset("full")["train"]
    model = build_model(SMALL, 1).cuda().to(memory_format=torch.channels_last)
    opt = make_optimizer(model, tr)
    x = torch.rand(16, 3, 32, 32, device="cuda").contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (16,), device="cuda")
    g = torch.Generator(device="cuda").manual_seed(0)
    train_step(model, model, x, y, opt, tr, g, None)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        train_step(model, model, x, y, opt, tr, g, None)
        return {"ok": True}
    except RuntimeError as e:
        return {"ok": False, "error": str(e)[:500]}
    finally:
        torch.cuda.set_sync_debug_mode("default")


def sec_estimate(args, s) -> dict:
    cpu = _device().type == "cpu"
    out_json = Path(args.out) / "estimate_full.json"
    cmd = [sys.executable, "-m", "factory.cli", "sweep", "estimate", "--preset", "tiny" if cpu else "full",
           "--device", "cpu" if cpu else "cuda", "--out", str(out_json)]
    if cpu:
        cmd += ["--sample", "2"]
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=max(20, args.budget - 10))
    res = json.loads(out_json.read_text()) if out_json.exists() else {}
    return {"command": shlex.join(["nares", *cmd[3:]]), "rc": p.returncode, "stdout": p.stdout[-3000:],
            "stderr": p.stderr[-1500:], "train_device_days": res.get("train_device_days"),
            "eval_device_days": res.get("eval_device_days"), "published_gpu_days": PUBLISHED,
            "note": "CPU dry run: preset tiny, not a GPU figure" if cpu else "preset full, all 15,625 architectures"}


def sec_packing(args, s) -> dict:
    """k concurrent training processes of the smallest architecture on one device; total images/s."""
    out = {"arch": SMALL, "width_base": s["width_base"], "batch": s["batch"], "runs": []}
    for k in s["pack_procs"]:
        go = _scratch(args) / f"packing_go_{k}"
        go.unlink(missing_ok=True)
        procs, files = [], []
        for i in range(k):
            f = _scratch(args) / f"packing_{k}_{i}.json"
            f.unlink(missing_ok=True)
            files.append(f)
            procs.append(subprocess.Popen([sys.executable, "-m", "benchmarks.gpu_check", "--pack-worker", str(f),
                                           "--go", str(go), *(["--cpu"] if args.cpu else [])], cwd=REPO))
        deadline = time.monotonic() + args.budget / len(s["pack_procs"])
        while time.monotonic() < deadline and not all(f.with_suffix(".ready").exists() for f in files):
            time.sleep(0.2)
        go.touch()
        for p in procs:
            try:
                p.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
        got = [json.loads(f.read_text()) for f in files if f.exists()]
        run = {"processes": k, "finished": len(got)}
        if len(got) == k:
            start, end = min(g["start"] for g in got), max(g["end"] for g in got)
            run["images"] = sum(g["images"] for g in got)
            run["total_images_per_s"] = run["images"] / (end - start)
        out["runs"].append(run)
    base = next((r.get("total_images_per_s") for r in out["runs"] if r["processes"] == 1), None)
    for r in out["runs"]:
        r["gain_vs_1"] = r["total_images_per_s"] / base if base and r.get("total_images_per_s") else None
    return out


def pack_worker(path: Path, go: Path, cpu: bool) -> None:
    import torch
    from tqdm import tqdm

    from benchmarks import at_throughput as at
    from nares.config import load_preset
    from nares.data import DeviceBatches, ImageSet
    from nares.models import build_model
    from nares.train.optim import make_optimizer
    from nares.train.runtime import set_threads
    from nares.train.trainer import train_epoch

    s = sizes(cpu)
    if cpu:
        set_threads(1)
    dev = _device()
    cfg = load_preset("full")
    cfg["train"].update(batch_size=s["batch"], precision="fp32" if cpu else "bf16")
    x, y, _ = at.load_images(s["batch"] * s["pack_batches"])
    imgs = ImageSet.from_hwc(x, y, "bench")
    model = build_model(SMALL, s["width_base"]).to(dev, memory_format=torch.channels_last)
    opt = make_optimizer(model, cfg["train"])
    batches = DeviceBatches(imgs, s["batch"], device=dev, shuffle=True, drop_last=True, augment=True,
                            channels_last=True)
    with tqdm(disable=True) as bar:
        train_epoch(model, model, batches, opt, cfg, 0, dev, None, bar)  # warm-up
        path.with_suffix(".ready").touch()
        while not go.exists():
            time.sleep(0.05)
        start = time.time()
        train_epoch(model, model, batches, opt, cfg, 1, dev, None, bar)
        end = time.time()
    path.write_text(json.dumps({"start": start, "end": end, "images": s["batch"] * s["pack_batches"]}))


def sec_precision(args, s) -> dict:
    """Train briefly (bf16 on GPU), then robust accuracy of the best checkpoint under fp32 and bf16 attacks."""
    from nares.attacks.suite import evaluate_attacks
    from nares.config import load_preset
    from nares.data import load_splits
    from nares.evaluate.runner import load_model
    from nares.train.checkpoints import checkpoint_path
    from nares.train.trainer import train_arch

    dev = _device()
    cfg = load_preset("tiny")
    cfg["model"]["width_base"] = s["train_width"]
    d = cfg["data"]
    d.update(train_limit=s["train_limit"], val_holdout=s["holdout"], test_limit=s["test_limit"])
    epochs = s["train_epochs"]
    cfg["train"].update(epochs=epochs, lr_milestones=[max(1, epochs * 3 // 4)] if epochs > 1 else [],
                        precision="bf16" if dev.type == "cuda" else "fp32")
    cfg["checkpoints"]["save_epochs"] = [0, epochs - 1]
    run = _scratch(args) / "precision_run"
    t0 = time.perf_counter()
    res = train_arch(SMALL, cfg, run, device=str(dev), progress=False)
    train_s = time.perf_counter() - t0
    model = load_model(checkpoint_path(run, "best"), dev, channels_last=False)
    test = load_splits(cfg["data"], seed=cfg["train"]["seed"]).test
    ev = cfg["eval"]
    out = {"arch": SMALL, "width_base": s["train_width"], "epochs": epochs, "train_precision": cfg["train"]["precision"],
           "train_seconds": train_s, "best_epoch": res.best_epoch, "n_test": len(test)}
    for precision in ("fp32", "bf16"):
        m = evaluate_attacks(model, test.x.to(dev), test.y.to(dev), ev, names=["clean", "pgd", "cw"],
                             batch_size=ev["batch_size"], precision=precision, seed=ev["seed"])
        out[precision] = {k: v.acc for k, v in m.items()}
    out["pgd_diff_points"] = round((out["bf16"]["pgd"] - out["fp32"]["pgd"]) * len(test))
    out["cw_diff_points"] = round((out["bf16"]["cw"] - out["fp32"]["cw"]) * len(test))
    return out


def sec_cudagraphs(args, s) -> dict:
    """Three training steps eager vs compiled + CUDA graphs from the same start: losses and weights."""
    import torch

    from nares.config import load_preset
    from nares.models import build_model
    from nares.train.optim import make_optimizer
    from nares.train.trainer import compile_net, train_step

    dev = _device()
    if dev.type != "cuda":
        return {"skipped": "CUDA graphs apply on CUDA only (train.cuda_graphs is ignored on CPU)"}
    out = {}
    for name, graphs in (("eager", None), ("compiled_cudagraphs", True)):
        tr = load_preset("full")["train"]
        tr.update(precision="fp32", compile=bool(graphs), cuda_graphs=bool(graphs))
        torch.manual_seed(0)
        model = build_model(SMALL, 4).to(dev, memory_format=torch.channels_last)
        net = compile_net(model, tr, dev)
        opt = make_optimizer(model, tr)
        g = torch.Generator(device=dev).manual_seed(0)
        gx = torch.Generator().manual_seed(1)
        losses = []
        t0 = time.perf_counter()
        for _ in range(3):
            x = torch.rand(64, 3, 32, 32, generator=gx).to(dev).contiguous(memory_format=torch.channels_last)
            y = torch.randint(0, 10, (64,), generator=gx).to(dev)
            loss, _ = train_step(model, net, x, y, opt, tr, g, None)
            losses.append(float(loss))
        out[name] = {"losses": losses, "seconds": time.perf_counter() - t0,
                     "weights": torch.cat([p.detach().flatten().float().cpu() for p in model.parameters()])}
    w0, w1 = out["eager"].pop("weights"), out["compiled_cudagraphs"].pop("weights")
    out["max_weight_diff"] = float((w0 - w1).abs().max())
    out["max_loss_diff"] = max(abs(a - b) for a, b in zip(out["eager"]["losses"], out["compiled_cudagraphs"]["losses"],
                                                          strict=True))
    return out


def _device_label() -> str:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"


# ---------------------------------------------------------------- driver

def run_section(name: str, args) -> None:
    s = sizes(args.cpu)
    t0 = time.perf_counter()
    try:
        result = globals()[f"sec_{name}"](args, s)
        status = "ok"
    except Exception as e:  # recorded; the driver goes on with the next section
        import traceback

        result, status = {"error": f"{type(e).__name__}: {str(e)[:500]}", "traceback": traceback.format_exc()[-3000:]}, "error"
    (Path(args.out) / f"{name}.json").write_text(json.dumps(
        {"section": name, "status": status, "seconds": time.perf_counter() - t0, "result": result}, indent=1,
        default=str) + "\n")


def drive(args) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    command = " ".join(shlex.quote(a) for a in args.command)
    summary: dict = {"command": command, "mode": "cpu" if args.cpu else "gpu", "setup_seconds": args.setup_seconds,
                     "sections": {}}
    for name, gpu_budget, cpu_budget in SECTIONS:
        if args.only and name not in args.only:
            continue
        budget = cpu_budget if args.cpu else gpu_budget
        left = args.deadline_s - (time.monotonic() - start)
        if left < min(budget, 20):
            summary["sections"][name] = {"status": "skipped", "reason": f"{left:.0f} s left of the deadline"}
            _write_summary(out, summary)
            continue
        budget = min(budget, left)
        t0 = time.perf_counter()
        print(f"gpu_check: {name} (budget {budget:.0f} s) …", flush=True)
        cmd = [sys.executable, "-m", "benchmarks.gpu_check", "--section", name, "--out", str(out),
               "--budget", str(budget), *(["--cpu"] if args.cpu else [])]
        try:
            p = subprocess.run(cmd, cwd=REPO, timeout=budget, capture_output=True, text=True)
            tail = (p.stdout + p.stderr)[-2000:]
            rc: int | str = p.returncode
        except subprocess.TimeoutExpired as e:
            tail = ((e.stdout or b"").decode(errors="replace") + (e.stderr or b"").decode(errors="replace"))[-2000:]
            rc = "timeout"
        f = out / f"{name}.json"
        entry = json.loads(f.read_text()) if f.exists() else {"section": name, "status": "no result", "result": {}}
        if rc == "timeout":
            entry["status"] = f"timeout after {budget:.0f} s"
            partial = out / "scratch" / f"{name}.partial.json"
            if partial.exists():
                entry["result"] = {"rows": json.loads(partial.read_text()), "partial": True}
        elif rc != 0 and entry["status"] == "ok":
            entry["status"] = f"exit {rc}"
        entry.update(wall_seconds=time.perf_counter() - t0, rc=rc, log_tail=tail if entry["status"] != "ok" else "")
        f.write_text(json.dumps(entry, indent=1, default=str) + "\n")
        summary["sections"][name] = {k: entry.get(k) for k in ("status", "wall_seconds")}
        summary["total_seconds"] = time.monotonic() - start
        _write_summary(out, summary)
        print(f"gpu_check: {name}: {entry['status']} ({entry['wall_seconds']:.1f} s)", flush=True)
    summary["total_seconds"] = time.monotonic() - start
    _write_summary(out, summary)
    shutil.rmtree(out / "scratch", ignore_errors=True)
    print((out / "summary.md").read_text())
    return 0


def _load(out: Path, name: str) -> dict:
    try:
        return json.loads((out / f"{name}.json").read_text()).get("result") or {}
    except (OSError, ValueError):
        return {}


def _fmt(v, spec: str = ".1f") -> str:
    return "n/a" if v is None else format(v, spec)


def _write_summary(out: Path, summary: dict) -> None:
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
    env, mm = _load(out, "env"), _load(out, "matmul")
    label = env.get("device") or ("CPU (dry run, tiny sizes; not GPU figures)" if summary["mode"] == "cpu" else "?")
    lines = [f"# GPU check on {label}", "", f"`{summary['command']}`", "",
             f"torch {env.get('torch', '?')}, CUDA build {env.get('cuda_build')}, setup {_fmt(summary.get('setup_seconds'))} s, "
             f"total {_fmt(summary.get('total_seconds'))} s", "", "| section | status | seconds |", "| --- | --- | --- |"]
    lines += [f"| {k} | {v.get('status')} | {_fmt(v.get('wall_seconds'))} |" for k, v in summary["sections"].items()]
    if mm:
        lines += ["", f"Measured dense matmul ({mm.get('dtype')}, n={mm.get('n')}): **{mm['tflops']:.3f} TFLOP/s**"]
    for name, title in (("at_eager", "PGD-7 AT, eager"), ("at_compile", "PGD-7 AT, torch.compile (ours)")):
        r = _load(out, name)
        if r.get("rows"):
            lines += ["", f"## {title} (batch {r.get('batch')}, data {r.get('data')})", "",
                      "| arch | GMACs/img | reference img/s | ours img/s | speed-up | MFU ref | MFU ours | peak GiB | error |",
                      "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
            for row in r["rows"]:
                ref, ours = row.get("reference", {}), row.get("ours", {})
                mfu = [_fmt(d.get("mfu_vs_measured_matmul"), ".1%") for d in (ref, ours)]
                peak = row.get("peak_bytes")
                lines.append(f"| {row['arch']} | {row['gmacs_per_image']:.3f} | {_fmt(ref.get('images_per_s'))} | "
                             f"{_fmt(ours.get('images_per_s'))} | {_fmt(row.get('speedup'), '.2f')} | {mfu[0]} | {mfu[1]} | "
                             f"{_fmt(peak / 1024**3 if peak else None, '.2f')} | {row.get('error', '')} |")
    ev = _load(out, "eval")
    if ev.get("pgd"):
        lines += ["", f"Evaluation ({ev['arch']}, {ev['images']} images, {ev['precision']}): PGD-20 "
                  f"{ev['pgd']['images_per_s']:.1f} img/s, AA-Compact {ev['aa']['images_per_s']:.1f} img/s"]
    sy = _load(out, "sync")
    if sy:
        lines += ["", f"No-host-sync: pytest rc {sy.get('pytest', {}).get('rc')}"
                  f"{' (skipped: no CUDA)' if sy.get('pytest', {}).get('skipped') else ''}; "
                  f"training step {sy.get('train_step', 'n/a (CPU)')}"]
    es = _load(out, "estimate")
    if es:
        lines += ["", f"Estimate (`{es.get('command')}`, {es.get('note')}): training {_fmt(es.get('train_device_days'), ',.1f')} "
                  f"device-days (published {PUBLISHED['train']:,}), evaluation {_fmt(es.get('eval_device_days'), ',.1f')} "
                  f"(published {PUBLISHED['eval']:,})"]
    pk = _load(out, "packing")
    if pk.get("runs"):
        lines += ["", f"## Packing ({pk['arch']}, width {pk['width_base']}, batch {pk['batch']})", "",
                  "| processes per device | total img/s | gain vs 1 |", "| --- | --- | --- |"]
        lines += [f"| {r['processes']} | {_fmt(r.get('total_images_per_s'))} | {_fmt(r.get('gain_vs_1'), '.2f')} |"
                  for r in pk["runs"]]
    pr = _load(out, "precision")
    if pr.get("fp32"):
        lines += ["", f"## fp32 vs bf16 attacks ({pr['arch']} width {pr['width_base']}, {pr['epochs']} epochs "
                  f"{pr['train_precision']}, {pr['n_test']} test images)", "",
                  "| attack | fp32 acc | bf16 acc |", "| --- | --- | --- |"]
        lines += [f"| {k} | {pr['fp32'][k]:.4f} | {pr['bf16'][k]:.4f} |" for k in ("clean", "pgd", "cw")]
        lines += ["", f"bf16 − fp32 robust points: PGD {pr['pgd_diff_points']:+d}, CW {pr['cw_diff_points']:+d}"]
    cg = _load(out, "cudagraphs")
    if cg:
        lines += ["", f"CUDA graphs: {cg.get('skipped') or ''}"
                  f"{'' if cg.get('skipped') else 'max loss diff ' + _fmt(cg.get('max_loss_diff'), '.2e') + ', max weight diff ' + _fmt(cg.get('max_weight_diff'), '.2e')}"]
    (out / "summary.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cpu", action="store_true", help="dry run on the CPU with tiny sizes")
    p.add_argument("--out", help="output folder (default benchmarks/results/gpu_check_<device>)")
    p.add_argument("--deadline-s", type=float, default=480.0, help="stop starting sections after this many seconds")
    p.add_argument("--setup-seconds", type=float, help="time the setup took (recorded)")
    p.add_argument("--only", nargs="+", help="run only these sections")
    p.add_argument("--section", help=argparse.SUPPRESS)
    p.add_argument("--budget", type=float, default=60.0, help=argparse.SUPPRESS)
    p.add_argument("--pack-worker", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--go", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.cpu:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # a dry run stays on the CPU even on a GPU machine
    args.command = ["python", "-m", "benchmarks.gpu_check", *(argv if argv is not None else sys.argv[1:])]
    if args.pack_worker:
        pack_worker(args.pack_worker, args.go, args.cpu)
        return 0
    if args.out is None:
        import torch

        tag = "cpu" if args.cpu or not torch.cuda.is_available() else torch.cuda.get_device_name(0).replace(" ", "_")
        args.out = str(REPO / "benchmarks" / "results" / f"gpu_check_{tag}")
    if args.section:
        run_section(args.section, args)
        return 0
    return drive(args)


if __name__ == "__main__":
    sys.exit(main())
