"""What one long-lived sweep worker does per architecture: train (resumable), evaluate, report device time.

Modes:
- `train`:   `nares.train.train_arch` then `nares.evaluate.evaluate_run` into the architecture's run folder;
             both resume / skip what is already there, so a restarted worker loses at most the current epoch.
             Each committed epoch, and the evaluated run, is mirrored in the object store
             (`nares.train.store_state`): the run folder is a cache, a worker on any node continues from the store.
- `dry-run`: a stand-in trainer that only sleeps `sweep.dry_run_sleep_ms` and writes nothing; it measures the
             scheduling overhead of a sweep without the cost of training (`sweep.dry_run_fail_archs` make it
             raise for chosen architectures, to exercise retries).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from nares.sweep.request import MODES
from nares.sweep.selection import SweepError
from nares.train.runtime import device_name, resolve_device


class ArchRunner:
    """One worker's state: the resolved preset, its device and (in `train` mode) the data splits on it."""

    def __init__(self, cfg: dict, mode: str = "train", device: str = "auto"):
        if mode not in MODES:
            raise SweepError(f"unknown sweep mode {mode!r} (expected one of {', '.join(MODES)})")
        self.cfg, self.mode = cfg, mode
        self.device = resolve_device(device)
        self.splits = self.store = None
        self.stopping = threading.Event()  # set by `stop`: the current run ends after its epoch, no new one starts
        if mode == "train":
            from nares.data import load_splits
            from nares.store.objects import ObjectStore

            self.store = ObjectStore.from_settings()
            self.splits = load_splits(cfg["data"], seed=cfg["train"]["seed"]).to(self.device)

    def stop(self) -> None:
        """Stop after the current epoch (committed); every later `run` raises `TrainingStopped` at once."""
        self.stopping.set()

    def _check_stop(self, arch: str) -> None:
        from nares.train.checkpoints import TrainingStopped

        if self.stopping.is_set():
            raise TrainingStopped(f"{arch}: not started, the worker is stopping")

    def run(self, arch: str, run_dir: str | Path, metrics: list[str] | None = None) -> dict:
        """Train `arch` in `run_dir` and evaluate exactly `metrics` (a suite's evaluations, in its order; default
        the `nares` suite of PROTOCOL §3) on its best checkpoint; returns device seconds per phase and the device."""
        t0 = time.perf_counter()
        self._check_stop(arch)
        if self.mode == "dry-run":
            time.sleep(self.cfg["sweep"]["dry_run_sleep_ms"] / 1000)
            if arch in self.cfg["sweep"]["dry_run_fail_archs"]:
                raise SweepError(f"dry-run: injected failure of {arch}")
            return {"arch": arch, "train_seconds": time.perf_counter() - t0, "eval_seconds": 0.0, "device": "dry-run"}
        from nares.evaluate import evaluate_run
        from nares.train import train_arch
        from nares.train.runtime import training_hash
        from nares.train.store_state import RunSync

        sync = RunSync.for_dir(self.store, run_dir)
        trained = train_arch(arch, self.cfg, Path(run_dir), device=self.device, splits=self.splits, progress=False,
                             sync=sync, stop=self.stopping.is_set)
        t1 = time.perf_counter()
        self._check_stop(arch)
        evaluate_run(Path(run_dir), self.cfg, device=self.device, splits=self.splits,
                     metrics=None if metrics is None else list(metrics))
        sync.commit(run_dir, arch=arch, preset_hash=training_hash(self.cfg), epoch=self.cfg["train"]["epochs"] - 1)
        t2 = time.perf_counter()
        return {"arch": arch, "train_seconds": t1 - t0, "eval_seconds": t2 - t1, "device": device_name(self.device),
                "epochs_run": trained.epochs_run, "resumed_from": trained.resumed_from}

    def evaluate(self, run_dir: str | Path, cells: list[tuple[str, list[str]]]) -> dict:
        """Evaluate only the given (checkpoint, metrics) cells (missing or stale); returns device seconds."""
        t0 = time.perf_counter()
        sync = None
        if self.mode == "train":
            from nares.evaluate.runner import check_run_preset
            from nares.train.checkpoints import read_done
            from nares.train.store_state import RunSync

            done = read_done(Path(run_dir))
            if done is not None:  # refuse another preset before any store traffic
                check_run_preset(Path(run_dir), done, self.cfg)
            sync = RunSync.for_dir(self.store, run_dir)
            sync.restore(run_dir)  # the finished run as stored, when this node's folder lacks it
        for checkpoint, metrics in cells:
            if self.mode == "dry-run":
                time.sleep(self.cfg["sweep"]["dry_run_sleep_ms"] / 1000)
                continue
            from nares.evaluate import evaluate_run

            evaluate_run(Path(run_dir), self.cfg, device=self.device, splits=self.splits, metrics=metrics,
                         checkpoint=checkpoint)
        if sync is not None and sync.pointer is not None:
            from nares.train.runtime import training_hash

            sync.commit(run_dir, arch=sync.pointer["arch"], preset_hash=training_hash(self.cfg),
                        epoch=sync.pointer["epoch"])
        device = device_name(self.device) if self.mode == "train" else "dry-run"
        return {"eval_seconds": time.perf_counter() - t0, "train_seconds": 0.0, "device": device}
