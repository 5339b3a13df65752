"""Fetch a checkpoint named by the manifest (key, sha256) and build the verified torch module.

A fetcher is any callable `fetch(key, dest)` that writes object `key` to the local file `dest` and returns
the sha256 of what it wrote when it computed one (else None):
`store_fetcher()` reads the project's object store, `local_fetcher(folder)` reads `<folder>/<key>`,
`file_fetcher(path)` one file (a release's DVC-pulled `checkpoints/<arch>/<kind>.pt`, `release_checkpoint`),
`s3_fetcher(bucket, ...)` downloads from any S3-compatible bucket. The file's sha256 must match the manifest before it is loaded, and it
is loaded with `torch.load(weights_only=True)` (no code execution).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from nares.errors import NaresError
from nares.io import sha256_file

Fetcher = Callable[[str, Path], str | None]


class CheckpointError(NaresError):
    """A checkpoint that is missing, does not match its manifest sha256, or does not fit its architecture."""


def local_fetcher(folder: str | Path) -> Fetcher:
    """Objects stored as plain files `<folder>/<key>` (a local mirror of the object store)."""
    base = Path(folder)

    def fetch(key: str, dest: Path) -> None:
        src = base / key
        if not src.is_file():
            raise CheckpointError(f"checkpoint object {key!r} is not under {base}")
        shutil.copyfile(src, dest)

    return fetch


def release_checkpoint(release_dir: str | Path, arch, kind: str) -> Path | None:
    """The file `dvc pull releases/<V>/checkpoints/<arch>` put in a release folder, or None when not pulled."""
    path = Path(release_dir) / "checkpoints" / str(arch) / f"{kind}.pt"
    return path if path.is_file() else None


def file_fetcher(path: str | Path) -> Fetcher:
    """One local file (e.g. a DVC-pulled checkpoint) standing for whatever key is asked."""

    def fetch(key: str, dest: Path) -> None:
        shutil.copyfile(path, dest)

    return fetch


def s3_fetcher(bucket: str, *, prefix: str = "", endpoint_url: str | None = None, client=None) -> Fetcher:
    """Objects `s3://<bucket>/<prefix><key>` (credentials from the usual AWS environment/config)."""
    if client is None:
        import boto3

        from nares.environment import environment

        client = boto3.client("s3", endpoint_url=endpoint_url or environment().source.get("NARES_S3_ENDPOINT"))

    def fetch(key: str, dest: Path) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            client.download_file(bucket, prefix + key, str(dest))
        except (BotoCoreError, ClientError) as e:
            raise CheckpointError(f"cannot fetch s3://{bucket}/{prefix}{key} ({e})") from None

    return fetch


def store_fetcher(store=None) -> Fetcher:
    """Objects of the project's object store (`nares.store.objects.ObjectStore`, default settings); the store
    checks each download against its recorded sha256 and returns the digest."""

    def fetch(key: str, dest: Path) -> str:
        from nares.store.objects import ObjectStore, StoreError

        try:
            return (store or ObjectStore.from_settings()).download(key, dest)
        except StoreError as e:
            raise CheckpointError(f"cannot fetch checkpoint object {key!r}: {e}") from None

    return fetch


def fetch_verified(fetch: Fetcher, key: str, sha256: str, cache_dir: Path) -> Path:
    """The local copy of object `key` whose sha256 is `sha256` (reused from `cache_dir` when present)."""
    dest = cache_dir / sha256[:2] / f"{sha256}.pt"
    if dest.is_file() and sha256_file(dest) == sha256:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.partial")
    try:
        got = fetch(key, tmp) or sha256_file(tmp)
        if got != sha256:
            raise CheckpointError(f"checkpoint {key!r} has sha256 {got[:12]}…, the manifest says {sha256[:12]}…")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def load_verified_model(path: Path, arch, width_base: int | None = None):
    """The PreActWRN of `arch` with the weights of checkpoint `path` (`{"state_dict", "meta"}`), in eval mode."""
    import torch

    from nares.spaces.wrn import build_model

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        state, meta = ckpt["state_dict"], ckpt.get("meta", {})
    except Exception as e:
        raise CheckpointError(f"checkpoint {path} is unreadable ({type(e).__name__})") from None
    if meta.get("arch") not in (None, str(arch)):
        raise CheckpointError(f"checkpoint {path} holds arch {meta['arch']}, expected {arch}")
    model = build_model(arch, width_base=width_base or int(meta.get("width_base", 16)),
                        num_classes=int(meta.get("num_classes", 10)))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"checkpoint {path} does not fit {arch}: {str(e).splitlines()[0]}") from None
    return model.eval()
