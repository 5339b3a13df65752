"""`evaluate_run`: PROTOCOL §3 for one checkpoint of a finished training run, then its published record."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import torch

from nares.attacks.common import compiled
from nares.data.corruptions import check_corruptions
from nares.evaluate.ledger import append_cell, find_cell, read_cells
from nares.evaluate.record import RECORD_FILE, REQUIRED_METRICS, write_run_record
from nares.evaluations import NARES_SUITE as METRICS  # the default: PROTOCOL §3
from nares.evaluations import evaluation_names, get_evaluation
from nares.evaluations.base import EvalContext
from nares.io import exclusive_folder
from nares.spaces import recorded_space, space_for
from nares.train.checkpoints import RunError, checkpoint_path, load_checkpoint, read_done, verify_checkpoints
from nares.train.runtime import (
    Stopwatch,
    code_version,
    device_name,
    evaluation_hash,
    resolve_device,
    training_hash,
)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def load_model(path: Path, device: torch.device, channels_last: bool) -> torch.nn.Module:
    """The eval-mode model of a checkpoint file."""
    ckpt = load_checkpoint(path)
    meta = ckpt["meta"]
    space = recorded_space(meta)
    model = space.build_model(space.parse(meta["arch"]), meta["width_base"], num_classes=meta["num_classes"])
    model.load_state_dict(ckpt["state_dict"])
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return model.to(device, memory_format=fmt).eval()


def finished_run(out_dir: Path) -> dict[str, Any]:
    """The run's completion marker (train_done.json); RunError when the run is not finished."""
    done = read_done(out_dir)
    if done is None:
        raise RunError(f"{out_dir} holds no finished training run (no train_done.json); run `nares train` first")
    return done


def check_run_preset(out_dir: Path, done: dict[str, Any], cfg: dict[str, Any]) -> None:
    """Refuse a preset other than the run's training preset, by name or by training hash (another model or data
    would give wrong cells, e.g. complexity of another `width_base`)."""
    name, trained = done.get("preset"), done.get("preset_hash")
    current = training_hash(cfg)
    if name != cfg["name"]:
        raise RunError(f"{out_dir} was trained with preset {name!r}, not {cfg['name']!r}: its cells would be wrong; "
                       f"evaluate it with preset {name!r} (the default of `nares evaluate`)")
    if trained != current:
        raise RunError(f"{out_dir} was trained with preset {name!r} at training hash {trained}, but that preset's model, "
                       f"train data, train, checkpoints or validation settings now hash to {current}: its cells would "
                       "be wrong; restore them in the params file")


def evaluate_run(out_dir: str | Path, cfg: dict[str, Any], *, device: str = "auto", splits=None,
                 metrics: list[str] | None = None, checkpoint: str = "best", progress: bool = False) -> dict[str, Any]:
    """Compute the cells of `metrics` (default: all) missing from DIR/evaluations.jsonl, then write DIR/record.jsonl.

    `cfg` must be the run's training preset (`check_run_preset`, before any work). Each input is loaded once, when
    the first evaluation needing it runs: the model, the test tensors, the first training images (as many as the
    evaluations with `needs_train` read); an evaluation that cannot run here (`unavailable`) is skipped.
    Returns {"computed": [...], "reused": [...], "skipped": {metric: why}, "cells": {metric: values},
    "record": the published-layout record or None when a required cell is still missing, "device",
    "device_seconds" spent on the cells computed by this call (`nares.evaluate.ledger` convention)}.
    """
    wanted = list(METRICS) if metrics is None else list(metrics)
    names = evaluation_names()
    bad = [m for m in wanted if m not in names]
    if bad:
        raise RunError(f"unknown metric {bad[0]!r} (expected some of {names})")
    for m in wanted:
        get_evaluation(m).settings(cfg)  # a bad setting is one line before any work
    if any(get_evaluation(m).needs_corruptions for m in wanted):
        check_corruptions()  # a bad CIFAR-10-C file fails before any work, not after the attacks
    out_dir = Path(out_dir)
    done = finished_run(out_dir)
    check_run_preset(out_dir, done, cfg)
    verify_checkpoints(out_dir, done, (checkpoint,))
    with exclusive_folder(out_dir):
        return _evaluate(out_dir, done, cfg, device, splits, wanted, checkpoint, progress)


def _evaluate(out_dir: Path, done: dict[str, Any], cfg: dict[str, Any], device: str, splits, wanted: list[str],
              checkpoint: str, progress: bool) -> dict[str, Any]:
    space = space_for(cfg)
    arch = space.parse(done["arch"])
    dev = resolve_device(device)
    channels_last = cfg["train"]["channels_last"]
    cells = read_cells(out_dir)
    ckpt_path = checkpoint_path(out_dir, checkpoint)
    key = {"arch": space.format(arch), "checkpoint": checkpoint}
    result: dict[str, Any] = {"computed": [], "reused": [], "skipped": {}, "cells": {}, "record": None,
                              "device": device_name(dev), "device_seconds": 0.0}
    model = test = train = None
    arch_id = space.index().id_of(arch) if space.size is not None else None  # a sampled space: the sweep's id
    for metric in wanted:
        ev = get_evaluation(metric)
        version = ev.version(cfg)
        found = find_cell(cells, **key, metric=metric, metric_version=version,
                          preset_hash=evaluation_hash(cfg, metric))
        if found is not None:
            result["reused"].append(metric)
            result["cells"][metric] = found["values"]
            continue
        why = ev.unavailable(cfg)
        if why is not None:
            result["skipped"][metric] = why
            continue
        if ev.needs_model and model is None:
            model = compiled(load_model(ckpt_path, dev, channels_last), compile=cfg["eval"].get("compile", False),
                             cuda_graphs=cfg["eval"].get("cuda_graphs", False), device=dev)
        if ev.needs_test and test is None:
            splits = _splits(cfg, splits)
            test = _test_tensors(splits, dev, channels_last)
        if ev.needs_train and train is None:
            n_train = max((get_evaluation(m).train_images(cfg) for m in wanted if get_evaluation(m).needs_train),
                          default=0)
            if n_train > 0:  # the first images every evaluation of this call needs, loaded once
                splits = _splits(cfg, splits)
                train = _train_tensors(splits, dev, channels_last, n_train)
        started, watch = _now(), Stopwatch(dev)
        if progress:
            print(f"{arch} {checkpoint}: {metric} …", flush=True)
        with watch.running():
            x, y = test if test is not None else (None, None)
            x_train, y_train = train if train is not None else (None, None)
            done_here = {c["metric"]: c["values"] for c in cells
                         if c.get("checkpoint") == checkpoint and c.get("status") == "done"}
            values = ev.cell(EvalContext(cfg=cfg, model=model, x=x, y=y, device=dev, channels_last=channels_last,
                                         arch=arch, space=space, cells=done_here, x_train=x_train, y_train=y_train))
        cell = {
            **key, "preset_hash": evaluation_hash(cfg, metric), "arch_id": arch_id, "metric": metric,
            "metric_version": version, "status": "done",
            "checkpoint_sha256": done["checkpoints"][checkpoint]["sha256"],
            "checkpoint_epoch": done["checkpoints"][checkpoint]["epoch"], "device": watch.device_name,
            "device_seconds": watch.device_seconds, "started_at": started,
            "finished_at": _now(), "code_version": code_version(), "values": values,
        }
        append_cell(out_dir, cell)
        cells.append(cell)
        result["computed"].append(metric)
        result["device_seconds"] += watch.device_seconds
        result["cells"][metric] = values
    current = {m: find_cell(cells, **key, metric=m, metric_version=get_evaluation(m).version(cfg),
                            preset_hash=evaluation_hash(cfg, m)) for m in (*REQUIRED_METRICS, "corruptions")}
    if checkpoint == "best" and space.name == "wrn" and all(current[m] for m in REQUIRED_METRICS):  # NARes layout
        values = {m: c["values"] for m, c in current.items() if c is not None}
        result["record"] = write_run_record(out_dir, arch, done, values)
        result["record_file"] = out_dir / RECORD_FILE
    return result


def _splits(cfg: dict[str, Any], splits):
    """`splits` as given, else the preset's (loaded once per call of `evaluate_run`)."""
    if splits is None:
        from nares.data import load_splits

        splits = load_splits(cfg["data"], seed=cfg["train"]["seed"])
    return splits


def _test_tensors(splits, dev: torch.device, channels_last: bool):
    from nares.train.validate import as_tensors

    return as_tensors(splits.test, dev, channels_last)


def _train_tensors(splits, dev: torch.device, channels_last: bool, n: int):
    """The first `n` training images (all when fewer): the run's training split (its hold-out removed,
    `data.train_limit` applied) in the split's fixed order, without augmentation."""
    from nares.train.validate import as_tensors

    return as_tensors(splits.train.head(min(n, len(splits.train))), dev, channels_last)
