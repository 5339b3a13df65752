"""The long-lived Ray actor of a sweep: loads its preset and data once, then trains/evaluates architectures."""

from __future__ import annotations

import os
from pathlib import Path

import ray


@ray.remote
class ArchWorker:
    """One per GPU (or GPU fraction, or group of CPUs). Keeps the data splits on its device between jobs."""

    def __init__(self, preset: str, mode: str, env: dict[str, str], num_threads: int):
        os.environ.update(env)  # first: `env` names the params file (NARES_PARAMS) that load_preset reads
        from nares.config import load_preset
        from nares.sweep.work import ArchRunner
        from nares.train.runtime import set_threads

        set_threads(max(1, num_threads))
        self.runner = ArchRunner(load_preset(preset), mode)

    def info(self) -> dict:
        return {"pid": os.getpid(), "device": self.runner.device, "node": ray.get_runtime_context().get_node_id()}

    def run(self, arch: str, run_dir: str) -> dict:
        return {**self.runner.run(arch, Path(run_dir)), "pid": os.getpid()}

    def evaluate(self, run_dir: str, cells: list[tuple[str, list[str]]]) -> dict:
        return {**self.runner.evaluate(Path(run_dir), cells), "pid": os.getpid()}
