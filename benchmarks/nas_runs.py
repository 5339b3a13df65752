"""Benchmark: `nares nas run` for all four algorithms, 400 runs × 500 queries, on a synthetic 15,625-row table.

Writes benchmarks/results/nas_synthetic.json (the CLI's --json report plus machine facts) and
benchmarks/results/nas_synthetic.md (the published table with wall times).

    .venv/bin/python benchmarks/nas_runs.py [--runs 400] [--workers N] [--tag NAME]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=400)
    ap.add_argument("--budget", type=int, default=500)
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--tag", default="synthetic", help="results go to benchmarks/results/nas_<tag>.{json,md}")
    args = ap.parse_args()
    from nares.nas.algorithms import ALGORITHMS
    from nares.records import write_jsonl
    from nares.synthetic import synthetic_records

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "cifar10.jsonl"
        t0 = time.perf_counter()
        write_jsonl(data, synthetic_records(epochs=10, corruptions=False, seed=0))
        gen_s = time.perf_counter() - t0
        env = {**os.environ, "NARES_CACHE_DIR": str(Path(tmp) / "cache")}
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "factory.cli", "top", "--metric", "VAL_PGD_ACC", "-k", "1", "--data", str(data)],
                       check=True, env=env, stdout=subprocess.DEVNULL)
        first_open_s = time.perf_counter() - t0
        rows, walls = [], {}
        for algo in ALGORITHMS:
            t0 = time.perf_counter()
            out = subprocess.run([sys.executable, "-m", "factory.cli", "nas", "run", "--algo", algo, "--runs", str(args.runs),
                                  "--budget", str(args.budget), "--workers", str(args.workers), "--data", str(data), "--json"],
                                 check=True, env=env, capture_output=True, text=True).stdout
            walls[algo] = round(time.perf_counter() - t0, 1)
            report = json.loads(out)
            rows += report["rows"]
            print(f"{algo}: {walls[algo]} s end to end", flush=True)
    report.update(rows=rows, source="synthetic_records(n=15625, seed=0, epochs=10)")
    report["machine"] = {"cpus": os.cpu_count(), "workers": args.workers, "python": platform.python_version(),
                         "processor": platform.processor() or platform.machine()}
    report["timings_s"] = {"generate_and_write_jsonl": round(gen_s, 1), "first_open_parse_and_cache": round(first_open_s, 1),
                           "nas_run_end_to_end": walls}
    from nares.nas.runner import format_table

    out_dir = ROOT / "benchmarks" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"nas_{args.tag}.json").write_text(json.dumps(report, indent=1))
    md = [f"# NAS benchmark on a synthetic table ({args.runs} runs × {args.budget} queries per algorithm)", "",
          "```", format_table(report), "```", "",
          f"Machine: {report['machine']}", "", "Timings (s): " + json.dumps(report["timings_s"]), ""]
    (out_dir / f"nas_{args.tag}.md").write_text("\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
