"""The `nares store` and `nares release` commands, run in-process against a real local S3 server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from factory.cli import main
from factory.local_s3 import LocalS3Server
from nares.records import read_jsonl, write_jsonl
from nares.synthetic import synthetic_records
from tests.s3_fixtures import s3_server_fixture  # noqa: F401  (fixture)

pytestmark = pytest.mark.services


def test_jsonl_import_export_round_trip(tmp_path: Path, capsys):
    recs = synthetic_records(5, seed=9, epochs=4)
    write_jsonl(tmp_path / "in.jsonl", recs)
    assert main(["store", "import-jsonl", str(tmp_path / "in.jsonl"), "--tables", str(tmp_path / "t")]) == 0
    assert (
        main(["store", "export-jsonl", "--tables", str(tmp_path / "t"), "--out", str(tmp_path / "out.jsonl")])
        == 0
    )
    assert (tmp_path / "out.jsonl").read_bytes() == (tmp_path / "in.jsonl").read_bytes()
    assert "imported 5 records" in capsys.readouterr().out
    assert (
        main(["store", "import-jsonl", str(tmp_path / "missing.jsonl"), "--tables", str(tmp_path / "t")]) == 2
    )
    assert "nares: error: records file" in capsys.readouterr().err
    assert read_jsonl(tmp_path / "out.jsonl") == recs
    # the folder holds the long rows (the source of truth) and, derived from them, the record tables
    from nares.results.store import read_results
    from nares.store.tables import RECORD_TABLES, read_tables, records_to_tables

    assert sorted(set(read_results(tmp_path / "t").column("arch_id").to_pylist())) == sorted(r["arch_id"] for r in recs)
    stored, expected = read_tables(tmp_path / "t"), records_to_tables(recs)
    assert all(stored[n].equals(expected[n]) for n in RECORD_TABLES)


def test_put_get_settings_and_empty_release_list(
    s3_server: LocalS3Server, tmp_path: Path, monkeypatch, capsys
):
    monkeypatch.setenv("NARES_S3_ENDPOINT", s3_server.endpoint_url)
    monkeypatch.setenv("NARES_S3_BUCKET", "cli")
    monkeypatch.setenv("NARES_S3_PREFIX", "team")
    monkeypatch.setenv("NARES_RELEASES", str(tmp_path / "releases"))
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    from nares.store.objects import ObjectStore

    ObjectStore(s3_server.settings(bucket="cli")).ensure_bucket()
    (tmp_path / "f.bin").write_bytes(b"x" * 1000)
    assert main(["store", "put", str(tmp_path / "f.bin")]) == 0
    key, sha, size = capsys.readouterr().out.split()
    assert key == f"team/objects/sha256/{sha[:2]}/{sha}" and size == "1000"
    assert main(["store", "get", key, str(tmp_path / "g.bin")]) == 0
    assert (tmp_path / "g.bin").read_bytes() == b"x" * 1000
    assert main(["store", "settings"]) == 0
    out = capsys.readouterr().out
    assert "bucket='cli'" in out and "S3RVER" not in out  # the secret is masked
    assert main(["release", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["release", "fetch", "v9"]) == 2
    assert "release v9 is not in the object store" in capsys.readouterr().err
