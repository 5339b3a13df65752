"""Resume state in the object store: a run SIGKILLed at random moments, its local folder deleted between kills
(a fresh node each time), resumes from the store and equals an uninterrupted run bit for bit."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import torch

from nares.constants import CHECKPOINT_KINDS
from nares.store.objects import ObjectStore
from nares.train.checkpoints import DONE_FILE, STATE_FILE, RunError, checkpoint_path, load_checkpoint
from nares.train.store_state import RunSync
from tests.s3_fixtures import s3_server_fixture, s3_store_fixture  # noqa: F401  (fixtures)
from tests.test_train_resume import ARCH, micro_cfg

pytestmark = [pytest.mark.services, pytest.mark.slow]

CHILD = (
    "import json, sys; from pathlib import Path; from nares.train import train_arch; "
    "from nares.store.objects import ObjectStore; from nares.train.store_state import RunSync; "
    "out = Path(sys.argv[3]); sync = RunSync.for_dir(ObjectStore.from_settings(), out); "
    "train_arch(sys.argv[1], json.load(open(sys.argv[2])), out, device='cpu', progress=False, sync=sync)"
)


def _env(store: ObjectStore, data_dir: Path) -> dict[str, str]:
    s = store.settings
    return {**os.environ, "NARES_DATA_DIR": str(data_dir), "OMP_NUM_THREADS": "1", "NARES_S3_ENDPOINT": s.endpoint_url,
            "NARES_S3_BUCKET": s.bucket, "AWS_ACCESS_KEY_ID": s.access_key_id, "AWS_SECRET_ACCESS_KEY": s.secret_access_key}


def _child(cfg_file: Path, out: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CHILD, ARCH, str(cfg_file), str(out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _pointer_epoch(sync: RunSync) -> int | None:
    p = sync.read()
    return None if p is None else p["epoch"]


@pytest.fixture
def setup(tmp_path, s3_store, data_dir):
    cfg = micro_cfg()
    cfg_file = tmp_path / "cfg.json"
    cfg_file.write_text(json.dumps(cfg))
    return cfg, cfg_file, _env(s3_store, data_dir)


def test_killed_runs_resume_from_the_store_bit_for_bit(tmp_path, s3_store, setup):
    cfg, cfg_file, env = setup
    ref, killed = tmp_path / "ref" / "tiny-seed0" / ARCH, tmp_path / "node" / "tiny-seed0" / ARCH
    ref_store = ObjectStore(s3_store.settings.with_(bucket=f"r-{uuid.uuid4().hex[:10]}"))
    ref_store.ensure_bucket()
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", CHILD, ARCH, str(cfg_file), str(ref)], capture_output=True,
                          env={**env, "NARES_S3_BUCKET": ref_store.bucket}, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    total = time.monotonic() - start

    sync = RunSync.for_dir(s3_store, killed)
    rng = random.Random(20261122)
    resumed_from_store = 0
    for n in range(5):
        if n:  # a fresh node: no local run folder, only what the store holds
            before = _pointer_epoch(sync)
            shutil.rmtree(killed, ignore_errors=True)
            resumed_from_store += before is not None
        child = _child(cfg_file, killed, env)
        if n < 2:  # die just after an epoch is in the store, then at random times
            seen = _pointer_epoch(sync)
            deadline = time.monotonic() + 300
            while child.poll() is None and time.monotonic() < deadline and _pointer_epoch(sync) == seen:
                time.sleep(0.05)
            time.sleep(rng.uniform(0, 0.3))
        else:
            time.sleep(rng.uniform(0.3, 0.9) * total)
        child.send_signal(signal.SIGKILL)
        child.wait()
        if (p := sync.read()) is not None and p["done"]:
            break
    assert resumed_from_store >= 1
    shutil.rmtree(killed, ignore_errors=True)
    proc = subprocess.run([sys.executable, "-c", CHILD, ARCH, str(cfg_file), str(killed)], capture_output=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]

    a, b = (json.loads((d / DONE_FILE).read_text()) for d in (ref, killed))
    assert a["history"] == b["history"] and a["best_epoch"] == b["best_epoch"]
    for kind in CHECKPOINT_KINDS:
        ca, cb = load_checkpoint(checkpoint_path(ref, kind)), load_checkpoint(checkpoint_path(killed, kind))
        same = ("arch", "epoch", "kind", "preset_hash", "seed")  # code_version follows the working tree's edits
        assert {k: ca["meta"][k] for k in same} == {k: cb["meta"][k] for k in same}
        for k, t in ca["state_dict"].items():
            assert torch.equal(t, cb["state_dict"][k]), f"{kind}: {k} differs"
    # the store holds exactly the finished run: its pointer, the four checkpoints and the completion marker
    pointer = sync.read()
    assert pointer["done"] and pointer["epoch"] == cfg["train"]["epochs"] - 1
    assert sorted(pointer["files"]) == sorted([DONE_FILE, *(f"checkpoints/{k}.pt" for k in CHECKPOINT_KINDS)])
    assert {f["sha256"] for f in pointer["files"].values()} == {e["sha256"] for e in b["checkpoints"].values()} | {
        pointer["files"][DONE_FILE]["sha256"]}
    objects = s3_store.list_keys(s3_store.settings.key("objects"))
    assert sorted(objects) == sorted(s3_store.content_key(f["sha256"]) for f in pointer["files"].values())
    assert not (killed / "state").exists()


def test_pointer_names_each_epoch_and_retires_the_previous_state(tmp_path, s3_store, setup):
    _, cfg_file, env = setup
    out = tmp_path / "node" / "tiny-seed0" / ARCH
    sync = RunSync.for_dir(s3_store, out)
    assert sync.pointer_key == s3_store.settings.key("runs", "tiny-seed0", ARCH, "resume.json")
    child = _child(cfg_file, out, env)
    seen: list[dict] = []
    while child.poll() is None:
        p = sync.read()
        if p is not None and not p["done"] and (not seen or seen[-1]["epoch"] != p["epoch"]):
            seen.append(p)
            if len(seen) == 2:
                child.send_signal(signal.SIGKILL)
        time.sleep(0.02)
    child.wait()
    assert [p["epoch"] for p in seen] == [0, 1]
    last = seen[-1]
    assert sorted(last["files"]) == sorted([STATE_FILE, "checkpoints/best.pt", "checkpoints/e74.pt", "checkpoints/e89.pt"])
    state = last["files"][STATE_FILE]["sha256"]
    assert state != seen[0]["files"][STATE_FILE]["sha256"]
    first = {f["sha256"] for f in seen[0]["files"].values()}
    assert seen[0]["files"][STATE_FILE]["sha256"] in last["retire"] and set(last["retire"]) <= first  # epoch 0's state
    keys = set(s3_store.list_keys(s3_store.settings.key("objects")))
    named = {s3_store.content_key(f["sha256"]) for f in last["files"].values()}
    assert named <= keys <= named | {s3_store.content_key(s) for s in last["retire"]}  # killed mid-retirement, maybe
    # a local state at the pointer's epoch but with other bytes is replaced by the store's (verified)
    (out / STATE_FILE).write_bytes(b"not the committed state")
    from nares.train.checkpoints import load_state

    assert sync.prefer(out, {"epoch": 1}, arch=ARCH, preset_hash=last["preset_hash"])
    assert load_state(out)["epoch"] == 1
    with pytest.raises(RunError, match="is for 4-8-4-8-4-8"):
        sync.prefer(out, None, arch="4-8-4-8-4-16", preset_hash=last["preset_hash"])
