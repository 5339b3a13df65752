"""PGD adversarial training of one architecture (PROTOCOL §2), resumable at epoch boundaries.

Every random draw is a function of (seed, epoch): the data order and augmentation through
`DeviceBatches.set_epoch`, the attack starts through a generator seeded per epoch. A run
restarted from its state after epoch e therefore repeats exactly what an uninterrupted run does
(bit for bit in deterministic CPU mode).
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nares.attacks.common import autocast, check_precision
from nares.constants import CHECKPOINT_KINDS
from nares.io import exclusive_folder
from nares.records import HISTORY_KEYS
from nares.spaces import DEFAULT_SPACE, space_for
from nares.train.checkpoints import (
    RunError,
    TrainingStopped,
    checkpoint_manifest,
    clear_state,
    cpu_state_dict,
    load_state,
    promote_pending_best,
    read_done,
    save_checkpoint,
    save_state,
    write_done,
)
from nares.train.optim import lr_at, make_optimizer, set_lr
from nares.train.runtime import (
    Stopwatch,
    code_version,
    determinism,
    device_name,
    resolve_device,
    training_hash,
)
from nares.train.store_state import RunSync
from nares.train.validate import validate_epoch

SECONDS_PER_DAY = 86400.0


@dataclass
class TrainResult:
    """What `train_arch` did: the history (fractions), best epoch, checkpoint files and the cost (device-seconds
    of the whole run on `device`, the `nares.evaluate.ledger` convention)."""

    out_dir: Path
    arch: Any  # an architecture of the preset's search space
    history: dict[str, list[float]]
    best_epoch: int
    checkpoints: dict[str, Path]
    device: str
    device_seconds: float
    epochs_run: int = 0  # epochs trained by this call (0: the run was already complete)
    resumed_from: int | None = None  # last completed epoch found in the resume state
    summary: dict[str, Any] = field(default_factory=dict)


def epoch_seed(seed: int, epoch: int, stream: int) -> int:
    """A seed for one random stream (0: attack starts, 1: validation attacks) of one epoch."""
    return (seed * 1_000_003 + epoch * 101 + stream) % (2**63)


def save_epoch_kinds(epoch: int, cfg: dict[str, Any]) -> list[str]:
    """Checkpoint kinds due at the end of `epoch` apart from `best`: e74/e89 at save_epochs, `last` at the end."""
    first, second = cfg["checkpoints"]["save_epochs"]
    kinds = [k for k, e in (("e74", first), ("e89", second)) if e == epoch]
    if epoch == cfg["train"]["epochs"] - 1:
        kinds.append("last")
    return kinds


def check_schedule(cfg: dict[str, Any]) -> None:
    """Refuse a preset the trainer cannot run (save epochs, best metric, precision) before any work."""
    epochs = cfg["train"]["epochs"]
    save = cfg["checkpoints"]["save_epochs"]
    if len(save) != 2 or not all(0 <= e < epochs for e in save):
        raise RunError(f"checkpoints.save_epochs={save} must be two epochs in 0..{epochs - 1}")
    if cfg["checkpoints"]["best_metric"] != "val_cw_acc":
        raise RunError(f"checkpoints.best_metric={cfg['checkpoints']['best_metric']!r} is not supported (expected val_cw_acc)")
    check_precision(cfg["train"]["precision"])  # the attacks would refuse it in the first batch


def _progress(progress: bool, total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img", unit_scale=True, disable=not progress, file=sys.stderr,
                leave=True, dynamic_ncols=True)


def compile_net(model: nn.Module, tr: dict[str, Any], device: torch.device) -> nn.Module:
    """The network the training step runs: `model` itself, or its torch.compile'd copy (same parameters) when
    `train.compile` (CUDA-graph capture too when `train.cuda_graphs`, CUDA only)."""
    from nares.attacks.common import compiled

    return compiled(model, compile=tr["compile"], cuda_graphs=tr.get("cuda_graphs", False), device=device)


def train_step(model: nn.Module, net: nn.Module, x: torch.Tensor, y: torch.Tensor, optimizer: torch.optim.Optimizer,
               tr: dict[str, Any], gen: torch.Generator | None,
               scaler: torch.amp.GradScaler | None) -> tuple[torch.Tensor, torch.Tensor]:
    """One Madry PGD-AT step on a batch: PGD on `net` with BN statistics frozen, then one clipped weight update.

    `model` owns the parameters and the train/eval mode; `net` is the module that runs (`compile_net`). Returns
    the detached adversarial CE loss and logits. No host sync: `nares train` and `nares sweep estimate` time
    this same function.
    """
    from nares.attacks import pgd

    atk = tr["attack"]
    if tr.get("cuda_graphs") and x.device.type == "cuda":
        torch.compiler.cudagraph_mark_step_begin()
    model.eval()
    x_adv = pgd(net, x, y, eps=atk["eps_255"] / 255, step=atk["step_255"] / 255, steps=atk["steps"], loss="ce",
                init=atk["init"], init_scale=atk["init_scale_255"] / 255, generator=gen, precision=tr["precision"])
    model.train()
    with autocast(x.device, tr["precision"]):
        logits = net(x_adv)
        loss = F.cross_entropy(logits, y)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(params, tr["grad_clip_norm"])
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        nn.utils.clip_grad_norm_(params, tr["grad_clip_norm"])
        optimizer.step()
    return loss.detach().float(), logits.detach()


def train_epoch(model: nn.Module, net: nn.Module, batches, optimizer: torch.optim.Optimizer, cfg: dict[str, Any],
                epoch: int, device: torch.device, scaler: torch.amp.GradScaler | None, bar) -> tuple[float, float]:
    """One epoch of Madry PGD-AT (`train_step` per batch); returns (mean adversarial CE loss, adversarial accuracy)."""
    tr = cfg["train"]
    gen = torch.Generator(device=device).manual_seed(epoch_seed(tr["seed"], epoch, 0))
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    batches.set_epoch(epoch)
    set_lr(optimizer, lr_at(epoch, tr))
    for x, y in batches:
        loss, logits = train_step(model, net, x, y, optimizer, tr, gen, scaler)
        loss_sum += loss * y.shape[0]
        correct += (logits.argmax(1) == y).sum()
        seen += y.shape[0]
        bar.update(y.shape[0])
    if seen == 0:
        raise RunError(f"no training batch in epoch {epoch} (fewer images than batch_size={tr['batch_size']}?)")
    return loss_sum.item() / seen, correct.item() / seen


def _state_seconds(seconds: dict[str, float]) -> dict[str, float]:
    """A resume state's seconds; one saved before device-seconds kept them as `wall` (the same time)."""
    return {"device": seconds.get("device", seconds.get("wall", 0.0)), "validation": seconds.get("validation", 0.0)}


def _arch_name(arch: Any, cfg: dict[str, Any]) -> str:
    """The canonical string of `arch` in the preset's search space."""
    return space_for(cfg).format(arch)


def _space_meta(cfg: dict[str, Any]) -> dict[str, Any]:
    """`{"space": name}` for a space other than the default (WRN runs' files stay as they were), plus
    `space_settings` when the preset's section sets any (they shape the model: `load_model` rebuilds with them)."""
    name = space_for(cfg).name
    if name == DEFAULT_SPACE:
        return {}
    settings = {k: v for k, v in (cfg.get("space") or {}).items() if k != "name"}
    return {"space": name, **({"space_settings": settings} if settings else {})}


def _checkpoint_meta(arch: Any, cfg: dict[str, Any], epoch: int) -> dict[str, Any]:
    return {
        **_space_meta(cfg), "arch": _arch_name(arch, cfg), "epoch": epoch, "preset": cfg["name"], "preset_hash": training_hash(cfg),
        "code_version": code_version(), "seed": cfg["train"]["seed"], "width_base": cfg["model"]["width_base"],
        "num_classes": cfg["model"]["num_classes"],
    }


def _finish(out_dir: Path, arch: Any, cfg: dict[str, Any], state: dict[str, Any], dev_name: str) -> dict[str, Any]:
    """Write the completion marker (last), then drop the resume state."""
    epochs = {"e74": cfg["checkpoints"]["save_epochs"][0], "e89": cfg["checkpoints"]["save_epochs"][1],
              "last": cfg["train"]["epochs"] - 1, "best": state["best_epoch"]}
    device_seconds = state["seconds"]["device"]
    summary = {
        **_space_meta(cfg), "arch": _arch_name(arch, cfg), "preset": cfg["name"], "preset_hash": training_hash(cfg),
        "code_version": code_version(),
        "seed": cfg["train"]["seed"], "device": dev_name, "gpu_type": dev_name,
        "timestamp": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d"),
        "phases": {"train": {"device": dev_name, "device_seconds": device_seconds,
                             "validation_device_seconds": state["seconds"]["validation"]}},
        "training_time_device_days": device_seconds / SECONDS_PER_DAY,
        "epochs": cfg["train"]["epochs"], "best_epoch": state["best_epoch"], "history": state["history"],
        "checkpoints": checkpoint_manifest(out_dir, epochs),
    }
    write_done(out_dir, summary)
    clear_state(out_dir)
    return summary


def _result(out_dir: Path, arch: Any, summary: dict[str, Any], epochs_run: int, resumed: int | None) -> TrainResult:
    from nares.train.checkpoints import checkpoint_path

    phase = summary["phases"]["train"]  # a run finished before device-seconds kept them as wall_seconds
    return TrainResult(
        out_dir=out_dir, arch=arch, history=summary["history"], best_epoch=summary["best_epoch"],
        checkpoints={k: checkpoint_path(out_dir, k) for k in CHECKPOINT_KINDS}, device=summary["device"],
        device_seconds=phase.get("device_seconds", phase.get("wall_seconds", 0.0)),
        epochs_run=epochs_run, resumed_from=resumed, summary=summary,
    )


def train_arch(arch: Any, cfg: dict[str, Any], out_dir: str | Path, *, device: str = "auto",
               splits=None, progress: bool = True, sync: RunSync | None = None,
               stop: Callable[[], bool] | None = None) -> TrainResult:
    """Adversarially train `arch` under preset `cfg`, writing checkpoints and history into `out_dir`.

    Resumes from `out_dir/state` when present; returns at once when the run is already complete. The folder
    is held exclusively while training (a second process on it gets `BusyError`).
    `splits` (a `nares.data.Splits`) lets a long-lived worker load the data once.
    `sync` mirrors every committed epoch in the object store and resumes from it when the folder is behind
    (`nares.train.store_state`); `stop` is asked after each committed epoch: True ends the run there
    (`TrainingStopped`), to be continued by the next call.
    """
    arch = space_for(cfg).parse(arch)
    out_dir = Path(out_dir)
    check_schedule(cfg)
    with exclusive_folder(out_dir):
        return _train_or_reuse(arch, cfg, out_dir, device, splits, progress, sync, stop)


def _train_or_reuse(arch: Any, cfg: dict[str, Any], out_dir: Path, device: str, splits, progress: bool,
                    sync: RunSync | None = None, stop: Callable[[], bool] | None = None) -> TrainResult:
    done = read_done(out_dir)
    if done is None and sync is not None and sync.restore_done(out_dir, arch=_arch_name(arch, cfg), preset_hash=training_hash(cfg)):
        done = read_done(out_dir)  # finished on another node: its files, verified, from the store
    if done is not None:
        if done["arch"] != _arch_name(arch, cfg) or done["preset_hash"] != training_hash(cfg):
            raise RunError(f"{out_dir} holds a finished run of {done['arch']} (preset {done['preset']}), not {arch} "
                           f"(preset {cfg['name']}); use another --out")
        clear_state(out_dir)
        return _result(out_dir, arch, done, 0, None)
    dev = resolve_device(device)
    with determinism(cfg["train"]["deterministic"]):
        return _train(arch, cfg, out_dir, dev, splits, progress, sync, stop)


def _train(arch: Any, cfg: dict[str, Any], out_dir: Path, dev: torch.device, splits, progress: bool,
           sync: RunSync | None = None, stop: Callable[[], bool] | None = None) -> TrainResult:
    from nares.data import DeviceBatches, load_splits

    tr, data_cfg = cfg["train"], cfg["data"]
    if splits is None:
        splits = load_splits(data_cfg, seed=tr["seed"])
    torch.manual_seed(tr["seed"])
    model = space_for(cfg).build_model(arch, cfg["model"]["width_base"], num_classes=cfg["model"]["num_classes"])
    memory_format = torch.channels_last if tr["channels_last"] else torch.contiguous_format
    model = model.to(dev, memory_format=memory_format)
    optimizer = make_optimizer(model, tr)
    scaler = torch.amp.GradScaler(dev.type) if tr["precision"] == "fp16" else None
    history: dict[str, list[float]] = {k: [] for k in HISTORY_KEYS}
    state = load_state(out_dir)
    if sync is not None and sync.prefer(out_dir, state, arch=_arch_name(arch, cfg), preset_hash=training_hash(cfg)):
        state = load_state(out_dir)  # the folder lacked the last committed epoch: restored from the store
    resumed = None
    start = 0
    best_epoch, best_value = -1, -1.0
    seconds = {"device": 0.0, "validation": 0.0}  # device-seconds: the whole epoch, and its validation part
    if state is not None:
        if state["arch"] != _arch_name(arch, cfg) or state["preset_hash"] != training_hash(cfg):
            raise RunError(f"resume state in {out_dir} is for {state['arch']} (preset hash {state['preset_hash']}), "
                           f"not {arch} (preset {cfg['name']}); use another --out")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        history, best_epoch, best_value = state["history"], state["best_epoch"], state["best_value"]
        seconds = _state_seconds(state["seconds"])
        resumed = state["epoch"]
        promote_pending_best(out_dir, best_epoch)
        start = state["epoch"] + 1
    net = compile_net(model, tr, dev)
    batches = DeviceBatches(
        splits.train, tr["batch_size"], device=dev, shuffle=True, drop_last=tr["drop_last"], augment=True,
        crop_padding=data_cfg["crop_padding"], flip=data_cfg["horizontal_flip"], seed=tr["seed"],
        channels_last=tr["channels_last"],
    )
    dev_name = device_name(dev)
    n_train = (len(splits.train.y) // tr["batch_size"]) * tr["batch_size"] if tr["drop_last"] else len(splits.train.y)
    epochs = tr["epochs"]
    for epoch in range(start, epochs):
        watch, val_watch = Stopwatch(dev), Stopwatch(dev)
        with _progress(progress, n_train, f"{arch} epoch {epoch + 1}/{epochs}") as bar:
            with watch.running():
                train_loss, train_acc = train_epoch(model, net, batches, optimizer, cfg, epoch, dev, scaler, bar)
                with val_watch.running():
                    val = validate_epoch(net, splits.val, cfg, epoch_seed(tr["seed"], epoch, 1), dev)
            bar.set_postfix_str(f"loss {train_loss:.3f} adv-acc {train_acc:.3f} val clean {val['val_acc']:.3f} "
                                f"pgd {val['pgd']:.3f} cw {val['cw']:.3f}")
        for k, v in {"train_loss": train_loss, "train_acc": train_acc, **val}.items():
            history[k].append(float(v))
        meta, weights = _checkpoint_meta(arch, cfg, epoch), cpu_state_dict(model)  # one host copy per epoch
        for kind in save_epoch_kinds(epoch, cfg):
            save_checkpoint(out_dir, kind, weights, meta)
        improved = val["cw"] > best_value  # ties keep the earlier epoch
        if improved:
            best_epoch, best_value = epoch, val["cw"]
            save_checkpoint(out_dir, "best", weights, meta, pending=True)
        seconds = {"device": seconds["device"] + watch.device_seconds,
                   "validation": seconds["validation"] + val_watch.device_seconds}
        state = {
            "arch": _arch_name(arch, cfg), "preset_hash": training_hash(cfg), "epoch": epoch,
            "model": weights,
            "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict() if scaler is not None else {},
            "history": history, "best_epoch": best_epoch, "best_value": best_value, "seconds": seconds,
        }
        save_state(out_dir, state)  # the epoch is committed here
        if improved:
            promote_pending_best(out_dir, best_epoch)
        if sync is not None:  # the epoch is in the store: any node continues from here
            sync.commit(out_dir, arch=_arch_name(arch, cfg), preset_hash=state["preset_hash"], epoch=epoch)
        if stop is not None and epoch < epochs - 1 and stop():
            raise TrainingStopped(f"{arch}: stopped after epoch {epoch} (committed); the next run resumes there")
    if state is None:
        raise RunError(f"preset {cfg['name']} trains for {epochs} epochs; nothing to do")
    summary = _finish(out_dir, arch, cfg, state, dev_name)
    if sync is not None:
        sync.commit(out_dir, arch=_arch_name(arch, cfg), preset_hash=state["preset_hash"], epoch=epochs - 1)
    return _result(out_dir, arch, summary, epochs - start, resumed)
