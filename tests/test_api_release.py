"""Opening a release by version (`nares.release.fetch_release`, local copy) in the release layout."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from factory.cli import main
from nares.api import open_dataset
from nares.io import sha256_file
from nares.records import write_jsonl
from nares.release import ReleaseError
from nares.spaces.wrn import all_archs
from nares.store.tables import RECORD_TABLES, records_to_tables
from nares.synthetic import synthetic_records


@pytest.fixture()
def releases(tmp_path, monkeypatch):
    """releases/v-test/: tables/<name>.parquet, cifar10.jsonl, SHA256SUMS and RELEASE.json, as `publish` lays out."""
    monkeypatch.setenv("NARES_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NARES_RELEASES", str(tmp_path / "releases"))
    folder = tmp_path / "releases" / "v-test"
    (folder / "tables").mkdir(parents=True)
    records = synthetic_records(archs=all_archs()[::1500], epochs=3, seed=9)
    for name, table in records_to_tables(records).items():
        pq.write_table(table, folder / "tables" / f"{name}.parquet")
    write_jsonl(folder / "cifar10.jsonl", records)
    files = [f"tables/{n}.parquet" for n in RECORD_TABLES] + ["cifar10.jsonl"]
    (folder / "SHA256SUMS").write_text("".join(f"{sha256_file(folder / f)}  {f}\n" for f in files))
    (folder / "RELEASE.json").write_text(json.dumps({"version": "v-test", "sha256sums_sha256": sha256_file(folder / "SHA256SUMS")}))
    return folder, records


def test_open_by_version_reads_the_release_tables(releases, capsys):
    folder, records = releases
    ds = open_dataset(release="v-test")
    assert ds.root == folder / "tables" and len(ds) == len(records)
    assert ds.batch_query([r["arch_id"] for r in records]) == records
    assert main(["query", str(records[2]["arch_id"]), "--release", "v-test", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == records[2]
    n = ds.sql("SELECT count(*) AS n FROM test_metrics").column("n")[0].as_py()
    assert n == len(records)


def test_a_corrupted_release_is_refused(releases):
    folder, _ = releases
    with open(folder / "cifar10.jsonl", "a") as fh:
        fh.write("\n")
    with pytest.raises(ReleaseError, match="does not match SHA256SUMS"):
        open_dataset(release="v-test")
