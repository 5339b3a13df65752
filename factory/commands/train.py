"""`nares train ARCH --preset P --out DIR [--resume]`: adversarially train one architecture."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="PGD-AT one architecture: history, four checkpoints (PROTOCOL §2)")
    p.add_argument("arch", help="architecture D1-W1-D2-W2-D3-W3, e.g. 4-8-4-8-4-8")
    p.add_argument("--preset", default="full", help="preset of params.yaml (default: full)")
    p.add_argument("--out", required=True, type=Path, help="run directory")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in DIR from its last completed epoch")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's; 1 is fastest on a busy machine)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_train)


def _train(args: argparse.Namespace) -> int:
    from nares.config import load_preset
    from nares.spaces import space_for
    from nares.train import train_arch
    from nares.train.checkpoints import STATE_FILE, RunError
    from nares.train.runtime import set_threads

    cfg = load_preset(args.preset)
    space = space_for(cfg)
    arch = space.parse(args.arch)
    set_threads(args.threads)
    if (args.out / STATE_FILE).exists() and not args.resume:
        raise RunError(f"{args.out} holds an interrupted run; pass --resume to continue it or choose another --out")
    res = train_arch(arch, cfg, args.out, device=args.device, progress=not args.quiet)
    if res.epochs_run == 0:
        print(f"{space.format(arch)}: already trained in {args.out}")
    h = res.history
    b = res.best_epoch
    print(f"{space.format(arch)}: best epoch {b} (val clean {h['val_acc'][b]:.4f}, PGD {h['pgd'][b]:.4f}, CW {h['cw'][b]:.4f}); "
          f"{res.device_seconds:.1f} device-seconds on {res.device}; checkpoints in {args.out / 'checkpoints'}")
    return 0
