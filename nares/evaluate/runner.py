"""`evaluate_run`: PROTOCOL §3 for one checkpoint of a finished training run, then its published record."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import torch

from nares.evaluate.ledger import append_cell, find_cell, read_cells
from nares.evaluate.metrics import ATTACK_METRICS, METRICS, attack_cell, complexity_cell, corruption_cell
from nares.evaluate.record import RECORD_FILE, REQUIRED_METRICS, write_run_record
from nares.io import exclusive_folder
from nares.space import Arch, arch_id
from nares.train.checkpoints import RunError, checkpoint_path, load_checkpoint, read_done, verify_checkpoints
from nares.train.runtime import Stopwatch, code_version, device_name, evaluation_hash, resolve_device


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def load_model(path: Path, device: torch.device, channels_last: bool) -> torch.nn.Module:
    """The eval-mode model of a checkpoint file."""
    from nares.models import build_model

    ckpt = load_checkpoint(path)
    meta = ckpt["meta"]
    model = build_model(meta["arch"], width_base=meta["width_base"], num_classes=meta["num_classes"])
    model.load_state_dict(ckpt["state_dict"])
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return model.to(device, memory_format=fmt).eval()


def evaluate_run(out_dir: str | Path, cfg: dict[str, Any], *, device: str = "auto", splits=None,
                 metrics: list[str] | None = None, checkpoint: str = "best", progress: bool = False) -> dict[str, Any]:
    """Compute the cells of `metrics` (default: all) missing from DIR/evaluations.jsonl, then write DIR/record.jsonl.

    Returns {"computed": [...], "reused": [...], "skipped": {metric: why}, "cells": {metric: values},
    "record": the published-layout record or None when a required cell is still missing, "device",
    "wall_seconds"/"gpu_seconds" spent on the cells computed by this call}.
    """
    out_dir = Path(out_dir)
    done = read_done(out_dir)
    if done is None:
        raise RunError(f"{out_dir} holds no finished training run (no train_done.json); run `nares train` first")
    verify_checkpoints(out_dir, done, (checkpoint,))
    wanted = list(METRICS) if metrics is None else list(metrics)
    bad = [m for m in wanted if m not in METRICS]
    if bad:
        raise RunError(f"unknown metric {bad[0]!r} (expected some of {list(METRICS)})")
    with exclusive_folder(out_dir):
        return _evaluate(out_dir, done, cfg, device, splits, wanted, checkpoint, progress)


def _evaluate(out_dir: Path, done: dict[str, Any], cfg: dict[str, Any], device: str, splits, wanted: list[str],
              checkpoint: str, progress: bool) -> dict[str, Any]:
    arch = Arch.parse(done["arch"])
    versions = cfg["eval"]["metric_versions"]
    dev = resolve_device(device)
    channels_last = cfg["train"]["channels_last"]
    cells = read_cells(out_dir)
    ckpt_path = checkpoint_path(out_dir, checkpoint)
    key = {"arch": str(arch), "checkpoint": checkpoint}
    result: dict[str, Any] = {"computed": [], "reused": [], "skipped": {}, "cells": {}, "record": None,
                              "device": device_name(dev), "wall_seconds": 0.0, "gpu_seconds": 0.0}
    model = test = None
    for metric in wanted:
        found = find_cell(cells, **key, metric=metric, metric_version=versions[metric],
                          preset_hash=evaluation_hash(cfg, metric))
        if found is not None:
            result["reused"].append(metric)
            result["cells"][metric] = found["values"]
            continue
        if metric == "corruptions":
            from nares.data import corruptions_available

            if not corruptions_available():
                result["skipped"][metric] = "CIFAR-10-C files are not present"
                continue
        if metric != "complexity" and model is None:
            model = load_model(ckpt_path, dev, channels_last)
        if metric in ATTACK_METRICS and test is None:
            test = _test_tensors(cfg, splits, dev, channels_last)
        started, watch = _now(), Stopwatch(dev)
        if progress:
            print(f"{arch} {checkpoint}: {metric} …", flush=True)
        with watch.running():
            if metric in ATTACK_METRICS:
                values = attack_cell(model, *test, metric, cfg)
            elif metric == "corruptions":
                values = corruption_cell(model, cfg, dev, channels_last)
            else:
                values = complexity_cell(arch, cfg)
        cell = {
            **key, "preset_hash": evaluation_hash(cfg, metric), "arch_id": arch_id(arch), "metric": metric, "metric_version": versions[metric], "status": "done",
            "checkpoint_sha256": done["checkpoints"][checkpoint]["sha256"],
            "checkpoint_epoch": done["checkpoints"][checkpoint]["epoch"], "device": device_name(dev),
            "gpu_seconds": watch.gpu_seconds, "wall_seconds": watch.wall_seconds, "started_at": started,
            "finished_at": _now(), "code_version": code_version(), "values": values,
        }
        append_cell(out_dir, cell)
        cells.append(cell)
        result["computed"].append(metric)
        result["wall_seconds"] += watch.wall_seconds
        result["gpu_seconds"] += watch.gpu_seconds
        result["cells"][metric] = values
    current = {m: find_cell(cells, **key, metric=m, metric_version=versions[m], preset_hash=evaluation_hash(cfg, m))
               for m in METRICS}
    if checkpoint == "best" and all(current[m] for m in REQUIRED_METRICS):
        values = {m: c["values"] for m, c in current.items() if c is not None}
        result["record"] = write_run_record(out_dir, arch, done, values)
        result["record_file"] = out_dir / RECORD_FILE
    return result


def _test_tensors(cfg: dict[str, Any], splits, dev: torch.device, channels_last: bool):
    from nares.train.validate import as_tensors

    if splits is None:
        from nares.data import load_splits

        splits = load_splits(cfg["data"], seed=cfg["train"]["seed"])
    return as_tensors(splits.test, dev, channels_last)
