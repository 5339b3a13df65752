"""Scheduling overhead of a sweep: all 15,625 architectures through the real `nares` flow (Prefect) and Ray
actor pool, with the `dry-run` stand-in trainer that only sleeps a few milliseconds per architecture.

overhead per architecture = (wall time of the sweep task × actors) / architectures − sleep per architecture

    .venv/bin/python benchmarks/sweep_overhead.py [--archs all] [--sleep-ms 5] [--actors 2]

Writes benchmarks/results/sweep_overhead.json and .md (with the command that produced them).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", default="all")
    ap.add_argument("--sleep-ms", type=float, default=5.0)
    ap.add_argument("--actors", type=int, default=2)
    ap.add_argument("--queue-depth", type=int, default=4)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "sweep_overhead")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="nares-bench-"))
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["presets"]["tiny"]["sweep"] = {"dry_run_sleep_ms": args.sleep_ms, "max_actors": args.actors,
                                          "queue_depth": args.queue_depth, "progress_every_s": 30}
    (tmp / "params.yaml").write_text(yaml.safe_dump(params))
    os.environ.update({"NARES_HOME": str(tmp / "home"), "NARES_PARAMS": str(tmp / "params.yaml"),
                       "PREFECT_HOME": str(tmp / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                       "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120", "DO_NOT_TRACK": "1"})
    os.environ.pop("PREFECT_API_URL", None)
    os.environ.pop("RAY_ADDRESS", None)

    from prefect.testing.utilities import prefect_test_harness

    from flows.nares_flow import nares
    from nares.sweep.journal import Journal
    from nares.sweep.paths import journal_path

    with prefect_test_harness(server_startup_timeout=120):
        t0 = time.perf_counter()
        result = nares(action="sweep", preset="tiny", archs=args.archs, mode="dry-run")["seed0"]
        flow_wall = time.perf_counter() - t0
    events = list(Journal(journal_path("tiny", 0)).events())
    from tasks.cluster import ray_temp_dir

    shutil.rmtree(ray_temp_dir(), ignore_errors=True)
    shutil.rmtree(tmp, ignore_errors=True)
    n = result["done"]
    sweep_wall = result["elapsed_s"]                  # from the first job handed out to the last one settled
    per_arch = sweep_wall * args.actors / n - args.sleep_ms / 1000
    out = {
        "command": "python " + " ".join([f"benchmarks/{Path(__file__).name}", *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d %H:%M"), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "architectures": n, "failed": result["failed"], "actors": args.actors, "queue_depth": args.queue_depth,
        "sleep_ms": args.sleep_ms, "flow_wall_s": round(flow_wall, 2), "sweep_wall_s": round(sweep_wall, 2),
        "ideal_s": round(n * args.sleep_ms / 1000 / args.actors, 2),
        "overhead_ms_per_arch": round(per_arch * 1000, 3),
        "throughput_archs_per_s": round(n / sweep_wall, 1), "journal_events": len(events),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(out, indent=2) + "\n")
    md = [f"# Sweep scheduling overhead ({out['date']})", "", f"`{out['command']}`", "",
          "| " + " | ".join(out) + " |", "|" + "---|" * len(out), "| " + " | ".join(str(v) for v in out.values()) + " |"]
    args.out.with_suffix(".md").write_text("\n".join(md) + "\n")
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
