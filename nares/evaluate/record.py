"""The per-architecture record of PROTOCOL §4 from a run's completion marker and its evaluation cells."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nares.spaces.wrn import Arch, arch_id

RECORD_FILE = "record.jsonl"
REQUIRED_METRICS: tuple[str, ...] = ("clean", "fgsm", "pgd", "cw", "aa", "complexity")


def test_entry(values: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The `test` argument of `build_record` (fractions) from the cells' values."""
    c, f, p, w, a = (values[m] for m in ("clean", "fgsm", "pgd", "cw", "aa"))
    return {
        "test_clean_acc": c["acc"], "test_loss": c["loss"],
        "Linf_fgsm_acc": f["acc"], "Linf_fgsm_stable": f["stable"],
        "Linf_pgd_acc": p["acc"], "Linf_pgd_stable": p["stable"], "Linf_pgd_lip": p["lip"],
        "Linf_cw_acc": w["acc"], "Linf_cw_stable": w["stable"], "Linf_cw_lip": w["lip"],
        "Linf_aa_acc": a["acc"],
        "corruptions": values.get("corruptions") or {},
    }


def train_entry(done: dict[str, Any]) -> dict[str, Any]:
    """The `train` argument of `build_record` from the completion marker (training_time in device-days)."""
    return {
        "seed": done["seed"], "gpu_type": done["gpu_type"], "timestamp": done["timestamp"],
        "training_time": done["training_time_device_days"],
        "best_epoch": done["best_epoch"], **done["history"],
    }


def write_run_record(out_dir: Path, arch: Arch, done: dict[str, Any], values: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Build (`build_record` validates) and atomically write DIR/record.jsonl (one line) from the cells' values;
    return the record."""
    from nares.records import build_record, write_jsonl

    rec = build_record(arch_id=arch_id(arch), arch=arch, params=values["complexity"]["params"],
                       macs=values["complexity"]["macs"], train=train_entry(done), test=test_entry(values))
    write_jsonl(Path(out_dir) / RECORD_FILE, [rec])
    return rec
