"""`nares evaluate DIR [--preset P]`: PROTOCOL §3 on a trained run's checkpoint; writes DIR/record.jsonl.

The preset is the run's training preset (train_done.json); another one is refused before any work.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    from nares.constants import CHECKPOINT_KINDS

    p = sub.add_parser("evaluate", help="evaluate a trained run (clean, FGSM, PGD-20, CW-40, AA, CIFAR-10-C) and write its record")
    p.add_argument("dir", type=Path, help="run directory written by `nares train`")
    p.add_argument("--preset", help="preset of params.yaml; must be the run's training preset (default: that preset)")
    p.add_argument("--checkpoint", default="best", choices=CHECKPOINT_KINDS, help="checkpoint to evaluate (default: best)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--metrics", help="comma-separated evaluations, e.g. clean,fgsm,pgd,cw,aa,corruptions,complexity "
                                     "(default: the preset's suite)")
    g.add_argument("--suite", help="a named suite of the preset's eval.suites (nares, jung, wsr, proxies, ...)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's; 1 is fastest on a busy machine)")
    p.set_defaults(func=_evaluate)


def _evaluate(args: argparse.Namespace) -> int:
    from nares.attacks.suite import ATTACK_NAMES
    from nares.config import load_preset
    from nares.evaluate import evaluate_run
    from nares.evaluate.runner import finished_run
    from nares.train.runtime import set_threads

    # evaluate_run refuses, before any work, a preset other than the run's (by name or by training hash)
    cfg = load_preset(args.preset or str(finished_run(args.dir).get("preset")))
    set_threads(args.threads)
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    if args.suite or (metrics is None and cfg["eval"].get("suite")):
        from nares.evaluations import suite

        metrics = suite(cfg, args.suite)  # an unknown suite or a bad setting: one line before any work
    res = evaluate_run(args.dir, cfg, device=args.device, metrics=metrics, checkpoint=args.checkpoint, progress=True)
    cells = res["cells"]
    for m in ATTACK_NAMES:
        if m in cells:
            c = cells[m]
            extra = f" stable {c['stable']:.4f}" if c.get("stable") is not None else ""
            extra += f" lip {c['lip']:.4g}" if c.get("lip") is not None else ""
            print(f"  {m:6s} acc {c['acc']:.4f} loss {c['loss']:.4f}{extra}" if c.get("loss") is not None
                  else f"  {m:6s} acc {c['acc']:.4f}{extra}")
    if "corruptions" in cells:
        accs = [s["acc"] for sev in cells["corruptions"].values() for s in sev.values()]
        print(f"  corruptions mean acc {sum(accs) / len(accs):.4f} over {len(accs)} cells")
    for m, why in res["skipped"].items():
        print(f"  {m}: skipped ({why})")
    print(f"computed {', '.join(res['computed']) or 'nothing'}; reused {', '.join(res['reused']) or 'nothing'}")
    if res["record"] is not None:
        print(f"record written to {res['record_file']}")
    return 0
