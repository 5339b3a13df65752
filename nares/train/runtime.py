"""Where and how a run executes: device choice, determinism, timing, code version.

Shared by `nares.train` and `nares.evaluate`; imports only torch and the standard library.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import torch

from nares import __version__
from nares.config import preset_hash
from nares.errors import ConfigError


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """`auto` → the first CUDA GPU when one is present, else the CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"device {device!r} is not a torch device (expected auto, cpu, cuda or cuda:N)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} was asked for but no CUDA GPU is available")
    return dev


def device_name(device: torch.device) -> str:
    """The GPU's marketing name (e.g. `NVIDIA H100 80GB HBM3`), or `cpu`."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


@contextlib.contextmanager
def determinism(enabled: bool) -> Iterator[None]:
    """Deterministic kernels while the block runs (bit-reproducible CPU runs); cuDNN autotuning otherwise."""
    was_det = torch.are_deterministic_algorithms_enabled()
    was_bench = torch.backends.cudnn.benchmark
    torch.use_deterministic_algorithms(enabled)
    torch.backends.cudnn.benchmark = not enabled
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was_det)
        torch.backends.cudnn.benchmark = was_bench


@dataclass
class Stopwatch:
    """Device-seconds of a phase: the wall time the block held `device`, synchronised on CUDA (queued kernels
    count). One convention on every device: a CPU run counts its seconds too, named by `device_name`."""

    device: torch.device
    device_seconds: float = 0.0

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self.device_seconds += time.perf_counter() - start

    @property
    def device_name(self) -> str:
        return device_name(self.device)


@cache
def code_version() -> str:
    """The package version plus the git commit of the source tree when there is one (`0.1.0+g1a2b3c4`)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=10", "HEAD"], capture_output=True, text=True, timeout=5,
            cwd=__file__.rsplit("/", 3)[0],
        )
        sha = out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{__version__}+g{sha}" if sha else __version__


def _data_keys(cfg: dict[str, Any], for_eval: bool) -> dict[str, Any]:
    return {k: v for k, v in cfg["data"].items() if k.startswith(("test", "corruption")) == for_eval}


def training_hash(cfg: dict[str, Any]) -> str:
    """Hash of the preset sections that decide a training run (model, train data, train, checkpoints, validation).

    Edits elsewhere in params.yaml (sweep, nas, eval) leave finished runs valid.
    """
    keys = ("model", "train", "checkpoints", "validation")
    return preset_hash({**{k: cfg[k] for k in keys}, "data": _data_keys(cfg, False), **_space_key(cfg)})


def _space_key(cfg: dict[str, Any]) -> dict[str, Any]:
    """The `space` section when it names a space other than WRN (its settings shape the model, e.g. NB201's
    cells_per_stage); WRN's section only restricts the choices, so WRN hashes stay as they were."""
    section = cfg.get("space") or {}
    return {"space": section} if section.get("name", "wrn") != "wrn" else {}


EVAL_SHARED_KEYS = ("eps_255", "seed", "precision", "lipschitz_offset")


def evaluation_hash(cfg: dict[str, Any], metric: str) -> str:
    """Hash of the settings that decide one evaluation cell: the model, the test data, the metric's own section (a
    registered evaluation's `section(cfg)`, which names every setting it reads, e.g. `fsp`'s PGD), and the identity
    of a generated CIFAR-10-C for the evaluations that read one.

    `metric_versions` is not part of it (the version is a key of its own); other metrics' settings are not either.
    """
    ev = cfg["eval"]
    if metric == "complexity":
        body: dict[str, Any] = {"model": cfg["model"], **_space_key(cfg)}
    elif metric == "corruptions":
        body = {"model": cfg["model"], "severities": ev["corruption_severities"], "precision": ev["precision"],
                "limit": cfg["data"]["corruption_limit"], **_space_key(cfg), **_corruption_set_key()}
    else:
        plugin = None if metric in PROTOCOL_ATTACKS else _registered(metric)
        settings = ev.get(metric) if plugin is None else plugin.section(cfg)  # its section holds what it reads
        body = {"model": cfg["model"], "data": _data_keys(cfg, True), "settings": settings,
                **{k: ev.get(k) for k in EVAL_SHARED_KEYS}, **_space_key(cfg),
                **(_corruption_set_key() if plugin is not None and plugin.needs_corruptions else {})}
    return preset_hash(body)


PROTOCOL_ATTACKS = ("clean", "fgsm", "pgd", "cw", "aa")  # hashed by their `eval.<name>` section, as ever


def _registered(metric: str) -> Any:
    from nares.evaluations import evaluation_names, get_evaluation

    return get_evaluation(metric) if metric in evaluation_names() else None


def _corruption_set_key() -> dict[str, Any]:
    """{"corruption_set": its set_id} when the readers use a CIFAR-10-C generated here (`nares data make-cifar10c`):
    its cells are not the official set's, nor another generated set's; nothing for the official files."""
    from nares.data.corruptions import corruption_set_info

    info = corruption_set_info()
    return {"corruption_set": info["set_id"]} if info["source"] == "generated" else {}


def set_threads(threads: int | None) -> None:
    """Set torch's CPU thread count (None: leave torch's default)."""
    if threads is None:
        return
    if threads < 1:
        raise ConfigError(f"--threads {threads} must be at least 1")
    torch.set_num_threads(threads)
