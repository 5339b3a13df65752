"""Time to validate and publish a synthetic release of all 15,625 architectures (100 epochs each).

Builds synthetic records (`nares.synthetic`, not timed), stores them as the long results table and its
record tables with a manifest of 62,500 checkpoint rows, times the two cifar10.jsonl exporters side by side
(from the record tables, as releases did, and from the long table, as they do now), then times
`nares.release.publish` against an embedded S3 server started on a free port: Great Expectations validation, Parquet tables, the 15,625-line cifar10.jsonl, dataset card,
checksums and the upload of every file. Checkpoint objects are not materialised (62,500 files), so
checkpoint verification is `none` here; `head` costs one HEAD request per checkpoint.
Writes benchmarks/results/release_15625.json.

    .venv/bin/python benchmarks/release_15625.py [--n 15625]

Records have the `full` preset's epoch count, the one `publish(preset="full")` validates against.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from factory.local_s3 import running
from nares.config import load_preset
from nares.exporters.nares_jsonl import records_to_long, write_results_jsonl
from nares.records import write_jsonl
from nares.release import publish
from nares.results.build import concat
from nares.results.store import write_results
from nares.store.objects import ObjectStore
from nares.store.tables import iter_records, records_to_tables, write_tables
from nares.synthetic import synthetic_manifest, synthetic_records
from nares.validation import validate_tables

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=15_625)
    args = ap.parse_args()
    epochs = load_preset("full")["train"]["epochs"]
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    recs = synthetic_records(args.n, seed=0, epochs=epochs)
    timings["generate_records_s"] = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(prefix="nares-bench-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        tables = records_to_tables(recs)
        ids = tables["architectures"].column("arch_id").to_pylist()
        tables["manifest"] = synthetic_manifest(ids)
        write_tables(tables, tmp / "tables")
        timings["records_to_tables_and_write_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        write_results(concat([records_to_long(recs[i:i + 1024]) for i in range(0, len(recs), 1024)]), tmp / "tables")
        timings["records_to_long_and_write_s"] = time.perf_counter() - t0
        del recs
        # cifar10.jsonl from the record tables in memory (the exporter before the long table was the source) and
        # from the stored long table, shard by shard (the release's exporter now, reading included), side by side
        # on the same data, alternating, best of two
        exporters = {"wide": lambda: write_jsonl(tmp / "wide.jsonl", iter_records(tables)),
                     "long": lambda: write_results_jsonl(tmp / "tables", tmp / "long.jsonl")}
        for _ in range(2):
            for name, export in exporters.items():
                t0 = time.perf_counter()
                export()
                key = f"export_jsonl_from_{name}_s"
                timings[key] = min(timings.get(key, float("inf")), time.perf_counter() - t0)
        assert (tmp / "wide.jsonl").read_bytes() == (tmp / "long.jsonl").read_bytes()
        t0 = time.perf_counter()
        check = validate_tables(tables, epochs=epochs, expected_archs=ids, verify_checkpoints="none")
        timings["validate_only_s"] = time.perf_counter() - t0
        assert check.success, check.failures
        with running(tmp / "s3") as server:
            store = ObjectStore(server.settings())
            store.ensure_bucket()
            t0 = time.perf_counter()
            info = publish(
                "bench",
                tables_root=tmp / "tables",
                store=store,
                expected_archs=ids,
                preset="full",
                verify_checkpoints="none",
                dest_root=tmp / "releases",
                dvc_repo=None,
            )
            timings["publish_total_s"] = time.perf_counter() - t0
    result = {
        "n_archs": info["n_archs"],
        "epochs": epochs,
        "release_files": info["files"],
        "release_mib": round(info["bytes"] / (1 << 20), 1),
        "validation_expectations": info["validation"]["n_expectations"],
        **{k: round(v, 1) for k, v in timings.items()},
        "publish_phases_s": info["seconds"],
        "publish_includes": "read tables, validate (GX + Data Docs), write tables, cifar10.jsonl (from the long "
                            "results), card, SHA256SUMS, upload",
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared with other work while measured)",
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "release_15625.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
