"""`Dataset.load_model`: a real checkpoint, fetched by manifest key, verified by sha256, weights_only."""

from __future__ import annotations

import pyarrow as pa
import pytest
import torch

from nares.api import CheckpointError, local_fetcher, open_dataset
from nares.io import sha256_file
from nares.spaces.wrn import Arch, build_model
from nares.store.tables import SCHEMAS, records_to_tables, write_tables
from nares.synthetic import synthetic_records
from nares.train.checkpoints import cpu_state_dict, save_checkpoint

ARCH = Arch.parse("4-8-4-8-4-8")
OTHER = Arch.parse("5-10-5-10-5-10")


@pytest.fixture()
def release(tmp_path, monkeypatch):
    """A release folder: tables/ with a manifest, objects/ holding the checkpoint under its key."""
    monkeypatch.setenv("NARES_CACHE_DIR", str(tmp_path / "cache"))
    torch.manual_seed(0)
    model = build_model(ARCH, width_base=1)
    run = tmp_path / "run"
    path = save_checkpoint(run, "best", cpu_state_dict(model), {"arch": str(ARCH), "epoch": 3, "width_base": 1, "num_classes": 10})
    key = f"checkpoints/{ARCH}/best.pt"
    (tmp_path / "rel" / "objects" / key).parent.mkdir(parents=True)
    (tmp_path / "rel" / "objects" / key).write_bytes(path.read_bytes())
    records = synthetic_records(archs=[ARCH, OTHER], epochs=4, corruptions=False)
    tables = records_to_tables(records)
    tables["manifest"] = pa.Table.from_pylist(
        [{"arch_id": records[0]["arch_id"], "kind": "best", "key": key, "sha256": sha256_file(path),
          "size": path.stat().st_size, "epoch": 3}], schema=SCHEMAS["manifest"])
    write_tables(tables, tmp_path / "rel" / "tables")
    return tmp_path / "rel", model, key


def test_load_model_returns_the_verified_weights(release):
    folder, model, _ = release
    ds = open_dataset(folder)
    assert len(ds) == 2 and ds.checkpoint_entry(ARCH)["epoch"] == 3
    loaded = ds.load_model(str(ARCH))
    assert not loaded.training
    ref = model.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in loaded.state_dict().items())
    x = torch.rand(2, 3, 32, 32)
    model.eval()
    assert torch.equal(loaded(x), model(x))
    again = ds.load_model(ARCH, fetch=local_fetcher(folder / "objects"))  # second fetch: cache hit, same weights
    assert torch.equal(again.fc.weight, model.fc.weight)


def test_tampered_or_missing_checkpoints_are_refused(release, tmp_path):
    folder, _, key = release
    ds = open_dataset(folder)
    blob = folder / "objects" / key
    blob.write_bytes(blob.read_bytes()[:-8] + b"tampered")
    with pytest.raises(CheckpointError, match="has sha256 .* the manifest says"):
        ds.load_model(ARCH)
    with pytest.raises(CheckpointError, match="no 'best' checkpoint of 5-10-5-10-5-10"):
        ds.load_model(OTHER)
    with pytest.raises(CheckpointError, match="no 'last' checkpoint"):
        ds.load_model(ARCH, checkpoint="last")
    with pytest.raises(CheckpointError, match="is not under"):
        ds.load_model(ARCH, fetch=local_fetcher(tmp_path / "empty"))
