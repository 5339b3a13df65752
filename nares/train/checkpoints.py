"""Files of a training run directory, each written atomically (a file is complete or absent).

    DIR/checkpoints/<kind>.pt   weights + metadata, kinds e74, e89, last, best (PROTOCOL §2)
    DIR/state/state.pt          resume state after the last completed epoch; deleted at completion
    DIR/train_done.json         completion marker, written last: history, timings, sha256 of each checkpoint
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nares.constants import CHECKPOINT_KINDS
from nares.errors import NaresError
from nares.io import atomic_write, sha256_file

STATE_FILE = "state/state.pt"
PENDING_BEST = "state/best.pt"
DONE_FILE = "train_done.json"


class RunError(NaresError):
    """A training run directory that is missing, incomplete, corrupt or belongs to another run."""


class TrainingStopped(RunError):
    """A run asked to stop: it ended after a committed epoch, and the next call resumes from there."""


def checkpoint_path(out_dir: Path, kind: str) -> Path:
    if kind not in CHECKPOINT_KINDS:
        raise RunError(f"checkpoint kind {kind!r} is not one of {list(CHECKPOINT_KINDS)}")
    return Path(out_dir) / "checkpoints" / f"{kind}.pt"


def cpu_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Weights and buffers as contiguous (NCHW) CPU tensors, whatever the model's device and memory format."""
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}


def save_checkpoint(out_dir: Path, kind: str, weights: dict[str, torch.Tensor], meta: dict[str, Any], *,
                    pending: bool = False) -> Path:
    """Write `{"state_dict": weights, "meta"}` to DIR/checkpoints/<kind>.pt (loadable with weights_only=True).

    `weights` is the model's `cpu_state_dict` (copied to the host once per epoch, however many files it goes to).
    `pending=True` writes DIR/state/best.pt instead: a new best becomes `best.pt` only once its epoch's
    resume state is saved (`promote_pending_best`), so a kill in between never leaves a best checkpoint
    from an epoch that the resumed run will redo.
    """
    path = Path(out_dir) / PENDING_BEST if pending else checkpoint_path(out_dir, kind)
    with atomic_write(path) as fh:
        torch.save({"state_dict": weights, "meta": {**meta, "kind": kind}}, fh)
    return path


def promote_pending_best(out_dir: Path, best_epoch: int) -> None:
    """Move DIR/state/best.pt into place if it is the committed best epoch's; drop it otherwise."""
    pending = Path(out_dir) / PENDING_BEST
    if not pending.exists():
        return
    if load_checkpoint(pending)["meta"]["epoch"] == best_epoch:
        target = checkpoint_path(out_dir, "best")
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(pending, target)
    else:
        pending.unlink()


def load_checkpoint(path: Path) -> dict[str, Any]:
    """The `{"state_dict", "meta"}` dict of a checkpoint file."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise RunError(f"checkpoint {path} does not exist") from None
    except Exception as e:
        raise RunError(f"checkpoint {path} is unreadable ({type(e).__name__})") from None


def save_state(out_dir: Path, state: dict[str, Any]) -> None:
    with atomic_write(Path(out_dir) / STATE_FILE) as fh:
        torch.save(state, fh)


def load_state(out_dir: Path) -> dict[str, Any] | None:
    """The resume state, or None when the run has not completed an epoch yet."""
    path = Path(out_dir) / STATE_FILE
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise RunError(f"resume state {path} is unreadable ({type(e).__name__}); delete it to restart the run") from None


def clear_state(out_dir: Path) -> None:
    shutil.rmtree(Path(out_dir) / "state", ignore_errors=True)


def checkpoint_manifest(out_dir: Path, epochs: dict[str, int]) -> dict[str, dict[str, Any]]:
    """{kind: {file, sha256, size, epoch}} for the four checkpoints."""
    out = {}
    for kind in CHECKPOINT_KINDS:
        path = checkpoint_path(out_dir, kind)
        out[kind] = {
            "file": str(path.relative_to(out_dir)),
            "sha256": sha256_file(path),
            "size": path.stat().st_size,
            "epoch": epochs[kind],
        }
    return out


def write_done(out_dir: Path, summary: dict[str, Any]) -> None:
    with atomic_write(Path(out_dir) / DONE_FILE, "w") as fh:
        json.dump(summary, fh, indent=1)
        fh.write("\n")


def read_done(out_dir: Path) -> dict[str, Any] | None:
    """The completion marker, or None when the run is not complete."""
    path = Path(out_dir) / DONE_FILE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise RunError(f"completion marker {path} is unreadable ({type(e).__name__})") from None


def verify_checkpoints(out_dir: Path, done: dict[str, Any], kinds: tuple[str, ...] = CHECKPOINT_KINDS) -> None:
    """Raise RunError when one of `kinds` is missing or its sha256 differs from the completion marker."""
    for kind in kinds:
        entry = done["checkpoints"][kind]
        path = checkpoint_path(out_dir, kind)
        if not path.exists():
            raise RunError(f"checkpoint {path} listed in {DONE_FILE} is missing")
        if sha256_file(path) != entry["sha256"]:
            raise RunError(f"checkpoint {path} does not match the sha256 in {DONE_FILE}")
