"""The long-lived Ray actor of a sweep: loads its preset and data once, then trains/evaluates architectures.

Stopping: `stop` (its own concurrency group, so it is served while a job runs) or SIGTERM to the actor's
process ends the current run after its epoch, once that epoch is committed (`nares.sweep.work.ArchRunner.stop`).
After a SIGTERM the process exits once the run has stopped; Ray restarts the actor and the job resumes from the
committed epoch. A node started with its own `NARES_HOME` keeps it: its run folders are a local cache of the
object store (no shared file system), the driver's run folder paths are re-rooted there.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import ray


@ray.remote(concurrency_groups={"control": 1})
class ArchWorker:
    """One per GPU (or GPU fraction, or group of CPUs). Keeps the data splits on its device between jobs."""

    def __init__(self, preset: str, mode: str, env: dict[str, str], num_threads: int):
        node_home = os.environ.get("NARES_HOME")  # set where the node was started: its own local folder
        os.environ.update(env)  # first: `env` names the params file (NARES_PARAMS) that load_preset reads
        self.home = (Path(env["NARES_HOME"]) if env.get("NARES_HOME") else None, node_home)
        if node_home:
            os.environ["NARES_HOME"] = node_home
        from nares.config import load_preset
        from nares.sweep.work import ArchRunner
        from nares.train.runtime import set_threads

        set_threads(max(1, num_threads))
        self.runner = ArchRunner(load_preset(preset), mode)
        self.terminated = self.busy = False
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_sigterm)

    def _on_sigterm(self, signum, frame) -> None:
        self.terminated = True
        self.runner.stop()
        if not self.busy:
            os._exit(0)

    def _local(self, run_dir: str) -> Path:
        """`run_dir` (a path under the driver's NARES_HOME) under this node's own NARES_HOME."""
        driver, node = self.home
        path = Path(run_dir)
        if driver is not None and node and path.is_relative_to(driver):
            return Path(node) / path.relative_to(driver)
        return path

    def info(self) -> dict:
        return {"pid": os.getpid(), "device": self.runner.device, "node": ray.get_runtime_context().get_node_id()}

    @ray.method(concurrency_group="control")
    def stop(self) -> None:
        self.runner.stop()

    def _done(self, result: dict) -> dict:
        return {**result, "pid": os.getpid(), "node": ray.get_runtime_context().get_node_id()}

    def _after_stop(self) -> None:
        self.busy = False
        if self.terminated:  # SIGTERM: the run stopped at a committed epoch; leave, Ray starts a fresh actor
            os._exit(0)

    def run(self, arch: str, run_dir: str, metrics: list[str] | None = None) -> dict:
        self.busy = True
        try:
            return self._done(self.runner.run(arch, self._local(run_dir), metrics))
        finally:
            self._after_stop()

    def evaluate(self, run_dir: str, cells: list[tuple[str, list[str]]]) -> dict:
        self.busy = True
        try:
            return self._done(self.runner.evaluate(self._local(run_dir), cells))
        finally:
            self._after_stop()
