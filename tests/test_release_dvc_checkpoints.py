"""A release's checkpoints in DVC: in a fresh clone, `dvc pull releases/<V>/checkpoints/<arch>` fetches exactly that
architecture's four checkpoints (sha256 equal to the manifest, DVC verifying its md5s), `dvc pull releases/<V>`
everything; nothing was uploaded a second time at publish; `load_model` works from the pulled files and by key."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from factory.local_s3 import LocalS3Server
from nares.config import load_preset
from nares.constants import CHECKPOINT_KINDS
from nares.io import sha256_file
from nares.release import publish
from nares.spaces.wrn import build_model
from nares.store.ingest import digests, dvc_key, ingest_run
from nares.store.objects import ObjectStore
from nares.store.tables import read_tables
from nares.synthetic import synthetic_records
from nares.train.checkpoints import cpu_state_dict, save_checkpoint
from tests.s3_fixtures import s3_server_fixture, s3_store_fixture  # noqa: F401  (fixtures)
from tests.test_release_publish import dvc, dvc_repo
from tests.test_store_ingest import make_run_dir

pytestmark = [pytest.mark.services, pytest.mark.slow]


def real_checkpoints(run: Path, width_base: int) -> None:
    """Replace a test run folder's checkpoint bytes with real weights of its architecture (and the marker's sums)."""
    done = json.loads((run / "train_done.json").read_text())
    torch.manual_seed(0)
    for kind in CHECKPOINT_KINDS:
        model = build_model(done["arch"], width_base=width_base, num_classes=10)
        meta = {"arch": done["arch"], "epoch": done["checkpoints"][kind]["epoch"], "width_base": width_base,
                "num_classes": 10}
        path = save_checkpoint(run, kind, cpu_state_dict(model), meta)
        done["checkpoints"][kind].update(sha256=sha256_file(path), size=path.stat().st_size)
    (run / "train_done.json").write_text(json.dumps(done))


def test_dvc_pull_of_one_architecture_in_a_fresh_clone(s3_server: LocalS3Server, s3_store: ObjectStore, tmp_path):
    cfg = load_preset("tiny")
    width = cfg["model"]["width_base"]
    recs = synthetic_records(3, seed=5, epochs=cfg["train"]["epochs"], width_base=width)
    root = tmp_path / "tables"
    for rec in recs:
        run = make_run_dir(tmp_path / "runs", rec)
        real_checkpoints(run, width)
        ingest_run(s3_store, root, run)
    manifest = read_tables(root, ["manifest", "architectures"])
    arch_of = dict(zip(*(manifest["architectures"].column(c).to_pylist() for c in ("arch_id", "arch")), strict=True))
    rows = manifest["manifest"].to_pylist()
    for r in rows:  # placed where DVC's remote expects it at ingest, its md5 recorded on the content object
        sha, md5 = digests(tmp_path / "runs" / arch_of[r["arch_id"]] / "checkpoints" / f"{r['kind']}.pt")
        assert sha == r["sha256"] and s3_store.head(r["key"])["md5"] == md5
        assert s3_store.head(dvc_key(s3_store, md5))["size"] == r["size"]

    repo = dvc_repo(tmp_path / "repo", s3_server, s3_store.bucket)
    before = set(s3_store.list_keys(s3_store.settings.key("dvc")))
    info = publish("v1", tables_root=root, store=s3_store, expected_archs=[r["arch_id"] for r in recs],
                   dest_root=repo / "releases", dvc_repo=repo)
    assert "dvc_error" not in info and info["dvc_checkpoints"] == 12
    added = set(s3_store.list_keys(s3_store.settings.key("dvc"))) - before
    ckpt_keys = {dvc_key(s3_store, s3_store.head(r["key"])["md5"]) for r in rows}
    assert not added & ckpt_keys  # no checkpoint uploaded again: only the release files and directory objects
    assert not (repo / "releases" / "v1" / "checkpoints").exists()

    clone = tmp_path / "clone"
    clone.mkdir()
    dvc(clone, "init", "--no-scm", "-q")
    for name in ("config", "config.local"):
        shutil.copy(repo / ".dvc" / name, clone / ".dvc" / name)
    (clone / "releases").mkdir()
    shutil.copy(repo / "releases" / "v1.dvc", clone / "releases" / "v1.dvc")
    assert "verify = true" in (clone / ".dvc" / "config").read_text()

    aid = rows[0]["arch_id"]
    arch = arch_of[aid]
    dvc(clone, "pull", "-q", f"releases/v1/checkpoints/{arch}")
    got = clone / "releases" / "v1" / "checkpoints"
    assert sorted(p.relative_to(got).as_posix() for p in got.rglob("*") if p.is_file()) == sorted(
        f"{arch}/{k}.pt" for k in CHECKPOINT_KINDS)
    for r in (r for r in rows if r["arch_id"] == aid):
        assert sha256_file(got / arch / f"{r['kind']}.pt") == r["sha256"]
    assert not (clone / "releases" / "v1" / "tables").exists()  # only what was asked for

    from nares.api import open_dataset
    from nares.api.checkpoints import release_checkpoint

    dvc(clone, "pull", "-q", "releases/v1")  # everything: tables, records and all twelve checkpoints
    assert len([p for p in got.rglob("*.pt")]) == 12
    ds = open_dataset(clone / "releases" / "v1")
    assert release_checkpoint(ds.root.parent, arch, "best") == got / arch / "best.pt"
    model = ds.load_model(arch, "best")  # from the pulled file
    ref = torch.load(got / arch / "best.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(v, ref[k]) for k, v in model.state_dict().items())
    shutil.rmtree(got)
    from nares.api.checkpoints import store_fetcher

    by_key = ds.load_model(arch, "best", fetch=store_fetcher(s3_store))  # and by key from the object store
    assert all(torch.equal(v, ref[k]) for k, v in by_key.state_dict().items())
