"""Per-epoch cost of keeping the resume state in the object store, for the largest architecture.

Builds 11-16-11-16-11-16 at the full preset's width_base, saves its resume state as the trainer does (weights, an SGD
momentum buffer of the same size, history), and times what `RunSync.commit` does after each epoch: the verified
content-addressed upload of the state (staged upload, read-back sha256, server-side copy, size check), the
pointer's replacement and the previous state's retirement, against the embedded S3 server (s3rver) on this
machine. The overhead is compared with the published per-epoch training time of that architecture: the published
13.1K training GPU-days spread over 15,625 architectures x epochs in proportion to MACs.

    .venv/bin/python benchmarks/resume_upload.py [--repeats 3] [--out benchmarks/results/resume_upload.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from pathlib import Path

import torch

ARCH = "11-16-11-16-11-16"
PUBLISHED_TRAIN_GPU_DAYS = 13_100


def state_file(path: Path, width_base: int, epochs: int) -> int:
    from nares.models import build_model
    from nares.train.checkpoints import cpu_state_dict

    model = build_model(ARCH, width_base=width_base, num_classes=10)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for p in model.parameters():  # one momentum buffer per parameter, as after the first step
        opt.state[p]["momentum_buffer"] = torch.randn_like(p)
    history = {k: [0.5] * epochs for k in ("train_loss", "train_acc", "val_acc", "pgd", "cw")}
    torch.save({"arch": ARCH, "epoch": 0, "model": cpu_state_dict(model), "optimizer": opt.state_dict(),
                "history": history, "best_epoch": 0, "best_value": 0.5}, path)
    return sum(p.numel() for p in model.parameters())


def published_epoch_seconds(width_base: int, epochs: int) -> float:
    """The largest architecture's share of the published training GPU-days, per epoch (time in proportion to MACs)."""
    from nares.spaces import wrn as complexity
    from nares.spaces.wrn import ArchIndex

    index = ArchIndex.default()
    macs = [complexity.macs(str(index.arch_of(i)), width_base) for i in range(1, len(index) + 1)]
    per_mac = PUBLISHED_TRAIN_GPU_DAYS * 86400 / (sum(macs) * epochs)
    return per_mac * complexity.macs(ARCH, width_base)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="benchmarks/results/resume_upload.json")
    args = ap.parse_args()

    from factory.local_s3 import running
    from nares.config import load_preset
    from nares.store.objects import ObjectStore
    from nares.train.store_state import RunSync

    cfg = load_preset("full")
    width, epochs = cfg["model"]["width_base"], cfg["train"]["epochs"]
    with tempfile.TemporaryDirectory() as tmp, running(Path(tmp) / "s3") as server:
        store = ObjectStore(server.settings(bucket=f"b-{uuid.uuid4().hex[:8]}"))
        store.ensure_bucket()
        run = Path(tmp) / "runs" / "full-seed0" / ARCH
        (run / "state").mkdir(parents=True)
        n_params = state_file(run / "state" / "state.pt", width, epochs)
        size = (run / "state" / "state.pt").stat().st_size
        sync = RunSync.for_dir(store, run)
        times = []
        for epoch in range(args.repeats + 1):
            if epoch:  # a new epoch's state: other bytes, same size
                with open(run / "state" / "state.pt", "r+b") as fh:
                    fh.seek(size // 2)
                    fh.write(epoch.to_bytes(8, "little"))
            t0 = time.perf_counter()
            sync.commit(run, arch=ARCH, preset_hash="bench", epoch=epoch)
            times.append(time.perf_counter() - t0)
        assert store.list_keys(store.settings.key("objects")) == [
            store.content_key(sync.pointer["files"]["state/state.pt"]["sha256"])]  # the previous states retired
    per_epoch = sum(times[1:]) / args.repeats  # the first commit has nothing to retire
    published = published_epoch_seconds(width, epochs)
    result = {
        "arch": ARCH, "width_base": width, "params": n_params, "state_bytes": size,
        "commit_seconds": [round(t, 3) for t in times], "commit_seconds_mean": round(per_epoch, 3),
        "throughput_MBps": round(size / per_epoch / 1e6, 1),
        "published_epoch_gpu_seconds": round(published, 1),
        "overhead_fraction_of_published_epoch": round(per_epoch / published, 5),
        "server": "embedded s3rver on this machine (loopback, local disk)",
        "command": "benchmarks/resume_upload.py " + " ".join(f"--{k} {v}" for k, v in vars(args).items()),
    }
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
