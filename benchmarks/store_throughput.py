"""Upload and download throughput of ~1 GB of checkpoint-sized files through the object store.

Starts its own embedded S3 server (s3rver) on a free loopback port with its data in a temporary folder,
uploads N files (content-addressed: staged upload, read-back sha256, server-side copy, head check),
then downloads them (sha256 checked before the rename). Writes benchmarks/results/store_throughput.json.

    .venv/bin/python benchmarks/store_throughput.py [--files 8] [--mb 128]
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
from nares.store.objects import ObjectStore

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--mb", type=int, default=128, help="size of each file in MiB")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="nares-bench-") as tmp:
        tmp = Path(tmp)
        files = []
        for i in range(args.files):
            path = tmp / "src" / f"ckpt{i}.pt"
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "wb") as fh:
                for _ in range(args.mb):
                    fh.write(os.urandom(1 << 20))
            files.append(path)
        total = sum(p.stat().st_size for p in files)
        with running(tmp / "s3") as server:
            store = ObjectStore(server.settings())
            store.ensure_bucket()
            t0 = time.perf_counter()
            stored = [store.put_file(p) for p in files]
            up = time.perf_counter() - t0
            t0 = time.perf_counter()
            for key, sha, _ in stored:
                store.get_file(key, tmp / "back" / sha, sha)
            down = time.perf_counter() - t0
            t0 = time.perf_counter()
            again = [store.put_file(p) for p in files]  # already stored: head check only
            dedup = time.perf_counter() - t0
            assert again == stored
    mib = total / (1 << 20)
    result = {
        "files": args.files,
        "file_mib": args.mb,
        "total_mib": mib,
        "upload_s": round(up, 2),
        "upload_mib_s": round(mib / up, 1),
        "download_s": round(down, 2),
        "download_mib_s": round(mib / down, 1),
        "reupload_existing_s": round(dedup, 2),
        "upload_includes": "sha256 of the source, staged upload (multipart, 64 MiB parts), full read-back sha256, "
        "server-side copy, head check",
        "download_includes": "download (multipart ranges) to a temporary file, sha256 check, rename",
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared)",
        "server": "s3rver 3.7.1 on loopback",
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "store_throughput.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
