"""`dvc repro` of the whole dvc.yaml (data → sweep → tables → validate → release) on real services, then
`dvc pull` into a fresh clone reproducing the release bit for bit.

The project's tracked files are copied into a temporary git repository (the working tree as it is), whose
dvc.yaml runs the tiny preset (2 epochs) on one architecture (`archs`, `version` and the epochs set by the test;
stages unchanged).
The sweep trains for real (ephemeral Prefect, a local Ray cluster); the object store and the DVC remote are the
test's own S3 server.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from factory.local_s3 import LocalS3Server
from nares.config import REPO_ROOT
from nares.store.objects import ObjectStore
from tests.s3_fixtures import s3_server_fixture, s3_store_fixture  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.services, pytest.mark.slow]
BIN = Path(sys.executable).parent
ARCH = "4-8-4-8-4-8"
VERSION = "repro-test"
STAGES = ["data", "sweep", "tables", "validate", "release"]


def run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> str:
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout + out.stderr


def project_copy(dest: Path) -> Path:
    """The project's tracked files (as they are in the working tree) in a new git repository at `dest`."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True).stdout
    for rel in filter(None, files.decode().split("\0")):
        src = REPO_ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    text = (dest / "dvc.yaml").read_text()
    text = re.sub(r"(?m)^(\s+archs:).*$", rf"\1 list:{ARCH}", text)
    text = re.sub(r"(?m)^(\s+version:).*$", rf"\1 {VERSION}", text)
    (dest / "dvc.yaml").write_text(text)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    params["presets"]["tiny"]["train"].update(epochs=2, lr_milestones=[1])    # shorter training, same stages
    params["presets"]["tiny"]["checkpoints"]["save_epochs"] = [0, 1]
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return dest


def git(repo: Path, *args: str) -> str:
    env = {"PATH": os.environ["PATH"], "HOME": str(repo.parent), "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "test",
           "GIT_COMMITTER_EMAIL": "t@example.org"}
    return run(["git", *args], repo, env)


def point_dvc_at(repo: Path, server: LocalS3Server, bucket: str, env: dict[str, str]) -> None:
    """The `store` remote of the copied .dvc/config, redirected to the test server (local config only)."""
    dvc = str(BIN / "dvc")
    run([dvc, "remote", "modify", "--local", "store", "url", f"s3://{bucket}/dvc"], repo, env)
    run([dvc, "remote", "modify", "--local", "store", "endpointurl", server.endpoint_url], repo, env)


def sums(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_dvc_repro_end_to_end_then_pull_into_a_fresh_clone(s3_server: LocalS3Server, s3_store: ObjectStore,
                                                            tmp_path: Path):
    data = os.environ.get("NARES_DATA_DIR", "/work/shared/data")
    if not (Path(data) / "cifar10" / "cifar10_prefix_subset.npz").exists():
        pytest.skip("the CIFAR-10 subset is not present (set NARES_DATA_DIR)")
    repo = project_copy(tmp_path / "project")
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(tmp_path / "home"), "NARES_HOME": str(tmp_path / "nares-home"),
           "NARES_DATA_DIR": data, "NARES_PARAMS": str(repo / "params.yaml"), "NARES_S3_ENDPOINT": server_url(s3_server),
           "NARES_S3_BUCKET": s3_store.bucket, "AWS_ACCESS_KEY_ID": "S3RVER", "AWS_SECRET_ACCESS_KEY": "S3RVER",
           "DVC_NO_ANALYTICS": "1", "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    (tmp_path / "home").mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "project")
    point_dvc_at(repo, s3_server, s3_store.bucket, env)

    out = run([str(BIN / "dvc"), "repro"], repo, env, timeout=1800)  # ~3 min on an idle 2-core machine
    for stage in STAGES:
        assert f"Running stage '{stage}'" in out, out[-3000:]
    release = repo / "releases" / VERSION
    published = sums(release)
    listed = dict(reversed(line.split(None, 1)) for line in (release / "SHA256SUMS").read_text().splitlines())
    assert {k: v for k, v in published.items() if k in listed} == listed and len(listed) >= 3
    assert (repo / "exports" / "tiny-seed0" / "cifar10.jsonl").read_text().count("\n") == 1   # one architecture
    assert (repo / "dvc.lock").exists()
    status = run([str(BIN / "dvc"), "status"], repo, env)
    assert "up to date" in status.lower(), status                  # a second repro would do nothing (bytecode
    #                                                                the stages' imports wrote is .dvcignore'd)
    run([str(BIN / "dvc"), "push"], repo, env)
    git(repo, "add", "-A")           # dvc.lock, the .gitignore entries of cached outputs, the uncached inventory
    git(repo, "commit", "-q", "-m", "dvc repro")

    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    assert not (clone / "releases" / VERSION).exists()             # only its .gitignore entry came with git
    point_dvc_at(clone, s3_server, s3_store.bucket, env)
    run([str(BIN / "dvc"), "pull", "release"], clone, env)        # the release stage's output only
    assert sums(clone / "releases" / VERSION) == published         # bit for bit, SHA256SUMS included
    run([str(BIN / "dvc"), "pull"], clone, env)                   # every output: the clone is the run's state
    assert "up to date" in run([str(BIN / "dvc"), "status"], clone, env).lower()
    assert sums(clone / "tables" / "tiny-seed0") == sums(repo / "tables" / "tiny-seed0")


def server_url(server: LocalS3Server) -> str:
    return server.endpoint_url
