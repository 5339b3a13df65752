"""Publishing releases against the real local S3 server: built, listed, fetched, recorded in DVC; or refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from factory.local_s3 import LocalS3Server
from nares.config import load_preset
from nares.records import read_jsonl, write_jsonl
from nares.release import ReleaseError, ReleaseRefused, fetch_release, list_releases, publish
from nares.results.store import RESULTS_TABLE, read_results
from nares.store.ingest import ingest_run
from nares.store.objects import ObjectStore
from nares.store.tables import SCHEMAS, read_tables, write_tables
from nares.synthetic import synthetic_records
from tests.s3_fixtures import s3_server_fixture, s3_store_fixture  # noqa: F401  (fixtures)
from tests.test_release_docs_offline import REMOTE
from tests.test_store_ingest import make_run_dir

pytestmark = [pytest.mark.services, pytest.mark.slow]
DVC = str(Path(sys.executable).parent / "dvc")


def dvc(repo: Path, *args: str) -> str:
    out = subprocess.run(
        [DVC, *args],
        cwd=repo,
        capture_output=True,
        text=True,
        env={"DVC_NO_ANALYTICS": "1", "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def dvc_repo(path: Path, server: LocalS3Server, bucket: str) -> Path:
    """A DVC project (no git) whose default remote is `bucket` on the test server."""
    path.mkdir(parents=True)
    dvc(path, "init", "--no-scm", "-q")
    (path / ".dvc" / "config").write_text(
        f"[core]\n    no_scm = True\n    remote = store\n    analytics = false\n['remote \"store\"']\n"
        f"    url = s3://{bucket}/dvc\n    endpointurl = {server.endpoint_url}\n"
    )
    (path / ".dvc" / "config.local").write_text(
        "['remote \"store\"']\n    access_key_id = S3RVER\n    secret_access_key = S3RVER\n"
    )
    return path


@pytest.fixture
def tiny_tables(s3_store: ObjectStore, tmp_path: Path) -> tuple[Path, list[dict]]:
    """Tables of 3 architectures in the tiny preset's shape (its width_base and epochs), ingested from run folders."""
    cfg = load_preset("tiny")
    recs = synthetic_records(3, seed=4, epochs=cfg["train"]["epochs"], width_base=cfg["model"]["width_base"])
    root = tmp_path / "tables"
    for rec in recs:
        ingest_run(s3_store, root, make_run_dir(tmp_path / "runs", rec))
    return root, recs


def test_publish_list_fetch_and_dvc(
    s3_server: LocalS3Server, s3_store: ObjectStore, tiny_tables, tmp_path: Path
):
    root, recs = tiny_tables
    repo = dvc_repo(tmp_path / "repo", s3_server, s3_store.bucket)
    ids = [r["arch_id"] for r in recs]
    info = publish(
        "v0.1",
        tables_root=root,
        store=s3_store,
        expected_archs=ids,
        dest_root=repo / "releases",
        dvc_repo=repo,
    )
    assert info["preset"] == "tiny" and info["n_archs"] == 3 and info["validation"]["success"]
    assert "dvc_error" not in info and set(info["seconds"]) >= {"validate", "export_jsonl", "upload", "dvc"}
    folder = repo / "releases" / "v0.1"
    write_jsonl(tmp_path / "expected.jsonl", recs)
    assert (folder / "cifar10.jsonl").read_bytes() == (tmp_path / "expected.jsonl").read_bytes()
    page = (folder / "validation" / "index.html").read_text(encoding="utf-8")
    assert REMOTE.findall(page) == [] and "passed" in page  # readable offline: no CDN, no script
    card = (folder / "DATASET_CARD.md").read_text()
    assert "PERCENTAGE (0–100)" in card and "MILLIONS" in card and "FRACTIONS in [0, 1]" in card
    # The space and its settings, the data set, the suite swept with (the preset's default) and what is present.
    assert (info["space"], info["datasets"], info["suite"]["name"], info["model_scale"]) == ("wrn", ["cifar10"],
                                                                                             "nares", 1)
    assert info["space_settings"] == {"depths": [4, 5, 7, 9, 11], "widths": [8, 10, 12, 14, 16]}
    assert info["suite"]["required"] == ["clean", "fgsm", "pgd", "cw", "aa", "complexity"]  # the published record's
    assert {"clean", "fgsm", "pgd", "cw", "aa"} <= set(info["evaluations"]) and info["evaluations"]["pgd"] == [1]
    assert (info["corruption_set"] is None) == ("corruptions" not in info["evaluations"])
    assert "Swept with suite `nares`: `clean` v1" in card and "Data set(s): cifar10." in card
    # Cost: device-seconds with the device named, for both phases (3 runs × 7 CPU cells of 1.5 s each).
    ev = info["cost"]["evaluation"]
    assert ev["device_seconds"] == pytest.approx(31.5) and ev["devices"] == ["cpu"]
    assert ev["device_seconds_by_metric"] == pytest.approx(
        {m: 4.5 for m in ("aa", "clean", "complexity", "corruptions", "cw", "fgsm", "pgd")})
    assert "- Evaluation: 31.5 device-seconds (0.000364583 device-days) on cpu." in card
    assert "  - pgd: 4.5 device-seconds" in card and "- Training: " in card
    sums = dict(reversed(line.split("  ", 1)) for line in (folder / "SHA256SUMS").read_text().splitlines())
    assert {"cifar10.jsonl", "DATASET_CARD.md"} <= set(sums)
    assert {p.split("/")[1] for p in sums if p.startswith("tables/")} == {*SCHEMAS, RESULTS_TABLE}
    # the release holds the ingested long-format results (the runs' training and ledger values)
    long = read_results(folder / "tables")
    assert long.equals(read_results(root)) and sorted(set(long.column("arch_id").to_pylist())) == sorted(ids)
    # Stored under releases/v0.1/ in the object store, RELEASE.json included.
    keys = s3_store.list_keys("releases/v0.1/")
    assert "releases/v0.1/RELEASE.json" in keys and len(keys) == len(sums) + 2
    rows = list_releases(store=s3_store, local_root=repo / "releases")
    assert [(r["version"], r["validation"], r["n_archs"], sorted(r["where"])) for r in rows] == [
        ("v0.1", "passed", 3, ["local", "store"])
    ]
    assert rows[0]["sha256sums_sha256"] == info["sha256sums_sha256"]
    # Never overwritten.
    with pytest.raises(ReleaseError, match="v0.1 already exists"):
        publish("v0.1", tables_root=root, store=s3_store, dest_root=repo / "releases", dvc_repo=None)
    # Fetched elsewhere from the store, every checksum verified; a tampered copy is detected.
    got = fetch_release("v0.1", tmp_path / "elsewhere" / "v0.1", store=s3_store)
    assert read_jsonl(got / "cifar10.jsonl") == recs
    assert read_tables(got / "tables", ["manifest"])["manifest"].num_rows == 12
    (got / "cifar10.jsonl").write_text("{}\n")
    with pytest.raises(ReleaseError, match="does not match SHA256SUMS"):
        fetch_release("v0.1", got, store=s3_store)
    # Recorded in DVC and pushed: a fresh project with only the .dvc file pulls identical files.
    assert (repo / "releases" / "v0.1.dvc").is_file()
    other = dvc_repo(tmp_path / "clone", s3_server, s3_store.bucket)
    (other / "releases").mkdir()
    (other / "releases" / "v0.1.dvc").write_text((repo / "releases" / "v0.1.dvc").read_text())
    dvc(other, "pull", "-q")
    assert (other / "releases" / "v0.1" / "cifar10.jsonl").read_bytes() == (
        tmp_path / "expected.jsonl"
    ).read_bytes()
    assert json.loads((other / "releases" / "v0.1" / "RELEASE.json").read_text())["version"] == "v0.1"
    pulled, source = read_tables(other / "releases" / "v0.1" / "tables"), read_tables(root)
    assert all(pulled[n].equals(source[n]) for n in SCHEMAS)  # identical tables after push → pull


def test_publish_refused_on_a_bad_row(s3_store: ObjectStore, tiny_tables, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("NARES_HOME", str(tmp_path / "home"))
    root, _ = tiny_tables
    tm = read_tables(root, ["test_metrics"])["test_metrics"].to_pylist()
    bad = tm[1]
    bad["aa_acc"] = bad["pgd_acc"] + 0.1  # AutoAttack stronger... weaker than PGD-20 by 10 points: impossible
    write_tables({"test_metrics": pa.Table.from_pylist([bad], schema=SCHEMAS["test_metrics"])}, root)
    with pytest.raises(ReleaseRefused) as err:
        publish("v0.2", tables_root=root, store=s3_store, dest_root=tmp_path / "releases", dvc_repo=None)
    msg = str(err.value)
    assert msg.startswith("release v0.2 refused: 2 expectation(s) failed: ")
    assert (
        f"expect_column_values_to_be_between(pgd_acc_minus_aa_acc) failed for 1 rows, e.g. arch_id {bad['arch_id']}"
        in msg
    )
    assert f"(cw_acc_minus_aa_acc) failed for 1 rows, e.g. arch_id {bad['arch_id']}" in msg
    assert (Path(err.value.report_dir) / "index.html").is_file()  # the report is kept for inspection
    assert s3_store.list_keys("releases/") == [] and not (tmp_path / "releases" / "v0.2").exists()
    assert list_releases(store=s3_store, local_root=tmp_path / "releases") == []


def test_corrupt_checkpoint_blocks_the_release(
    s3_server: LocalS3Server, s3_store: ObjectStore, tiny_tables, tmp_path: Path, monkeypatch
):
    monkeypatch.setenv("NARES_HOME", str(tmp_path / "home"))
    root, _ = tiny_tables
    key = read_tables(root, ["manifest"])["manifest"].column("key")[0].as_py()
    head, _, name = key.rpartition("/")
    on_disk = s3_server.data_dir / s3_store.bucket / head / f"{name}._S3rver_object"
    on_disk.write_bytes(on_disk.read_bytes()[::-1])  # same size, other bytes
    with pytest.raises(
        ReleaseRefused,
        match=r"manifest: expect_column_values_to_be_in_set\(checkpoint_verified\) failed for 1 rows",
    ):
        publish("v0.3", tables_root=root, store=s3_store, dest_root=tmp_path / "releases", dvc_repo=None)


def _bad_ids_tables(s3_store: ObjectStore, tmp_path: Path, *, keep_right_id: bool) -> tuple[Path, int]:
    """Tiny-preset tables where one architecture is (also, `keep_right_id`) stored under an id not its own."""
    cfg = load_preset("tiny")
    recs = synthetic_records(2, seed=5, epochs=cfg["train"]["epochs"], width_base=cfg["model"]["width_base"])
    root = tmp_path / "tables"
    used = {r["arch_id"] for r in recs}
    wrong = next(i for i in range(1, 15_626) if i not in used)
    for k, rec in enumerate(recs):
        run = make_run_dir(tmp_path / "runs", rec)
        if k == 0:
            ingest_run(s3_store, root, run, arch_id=wrong)  # `nares store ingest --arch-id` with a wrong id
            if not keep_right_id:
                continue
        ingest_run(s3_store, root, run)
    return root, wrong


def test_publish_refuses_one_architecture_under_two_ids(s3_store: ObjectStore, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("NARES_HOME", str(tmp_path / "home"))
    root, wrong = _bad_ids_tables(s3_store, tmp_path, keep_right_id=True)
    with pytest.raises(ReleaseRefused) as err:
        publish("v0.4", tables_root=root, store=s3_store, dest_root=tmp_path / "releases", dvc_repo=None)
    msg = str(err.value)
    assert msg.startswith("release v0.4 refused: 2 expectation(s) failed: ")
    assert "architectures: expect_column_values_to_be_unique(arch) failed for 2 rows" in msg
    assert (
        f"expect_column_pair_values_to_be_equal(('arch_id', 'arch_id_in_space')) failed for 1 rows, "
        f"e.g. arch_id {wrong}" in msg
    )
    assert s3_store.list_keys("releases/") == [] and not (tmp_path / "releases" / "v0.4").exists()


def test_cli_refusal_is_one_line_on_stderr_with_status_2(
    s3_server: LocalS3Server, s3_store: ObjectStore, tmp_path: Path, monkeypatch, capsys
):
    from factory.cli import main

    monkeypatch.setenv("NARES_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NARES_RELEASES", str(tmp_path / "releases"))
    monkeypatch.setenv("NARES_S3_ENDPOINT", s3_server.endpoint_url)
    monkeypatch.setenv("NARES_S3_BUCKET", s3_store.bucket)
    for k in ("NARES_S3_PREFIX", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(k, raising=False)
    root, wrong = _bad_ids_tables(s3_store, tmp_path, keep_right_id=False)
    code = main(["release", "publish", "--version", "v0.5", "--tables", str(root), "--no-dvc"])
    out, errs = capsys.readouterr()
    assert code == 2 and out == ""
    assert errs.count("\n") == 1 and errs.startswith(
        "nares: error: release v0.5 refused: 1 expectation(s) failed: "
    )
    assert f"('arch_id', 'arch_id_in_space')) failed for 1 rows, e.g. arch_id {wrong}" in errs
    kept = Path(errs.rstrip().rsplit("(report: ", 1)[1].rstrip(")"))
    assert kept.is_relative_to(tmp_path / "home" / "refused") and (kept / "index.html").is_file()
    assert s3_store.list_keys("releases/") == []


def test_user_credentials_reach_dvc_only_through_its_environment(
    s3_server: LocalS3Server, s3_store: ObjectStore, tmp_path: Path, caplog
):
    """A loopback endpoint with keys the user provided (a tunnel, a local MinIO): they used to be written in
    plain text to `.dvc/config.local`. Now they reach `dvc` through its environment only; the embedded
    server's pair written there earlier is removed (DVC would prefer it); that pair alone is ever written."""
    from nares.release import dvc_env, record_in_dvc

    caplog.set_level("INFO")
    key_id, secret = "AKIAUSERTEST4242", "user-secret-Zq9x7Wv"
    user = s3_server.settings(bucket=s3_store.bucket, access_key_id=key_id, secret_access_key=secret)
    assert user.is_local and not user.embedded_credentials and s3_server.settings().embedded_credentials
    env = dvc_env(user)
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == (key_id, secret)
    repo = dvc_repo(tmp_path / "repo", s3_server, s3_store.bucket)  # config.local: the embedded pair
    folder = repo / "releases" / "v7"
    folder.mkdir(parents=True)
    (folder / "RELEASE.json").write_text('{"version": "v7"}\n')
    # s3rver accepts only its own pair: the push fails, so DVC used the user's keys, not a file's pair.
    with pytest.raises(ReleaseError, match="dvc push") as err:
        record_in_dvc(repo, folder, user)
    assert "access_key_id" not in (repo / ".dvc" / "config.local").read_text()
    written = [p for p in (tmp_path / "repo").rglob("*") if p.is_file()]
    assert written and not [
        p for p in written if key_id.encode() in p.read_bytes() or secret.encode() in p.read_bytes()
    ]
    assert key_id not in str(err.value) and secret not in str(err.value)
    assert key_id not in caplog.text and secret not in caplog.text
    # The embedded pair (public, loopback-only) is written back, and the push then succeeds.
    record_in_dvc(repo, folder, s3_server.settings(bucket=s3_store.bucket))
    assert "access_key_id = S3RVER" in (repo / ".dvc" / "config.local").read_text()
