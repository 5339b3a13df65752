"""The sweep cost model: work counted by hand for the `tiny` preset, an exact fit, and the projection."""

from __future__ import annotations

import pytest

from nares.config import load_preset
from nares.spaces.wrn import Arch, macs
from nares.sweep.estimate import (
    FWD,
    fit_cost,
    measure_pass_seconds,
    project,
    sample_archs,
    split_sizes,
    work_passes,
)


def test_split_sizes_and_passes_by_hand():
    cfg = load_preset("tiny")
    d = cfg["data"]
    n_train = d["train_limit"] - d["val_holdout"]
    assert split_sizes(cfg) == {"train": n_train, "val": d["val_holdout"], "test": d["test_limit"],
                                "corruption_cell": d["corruption_limit"]}
    t, v, e = cfg["train"], cfg["validation"], cfg["eval"]
    used = n_train // t["batch_size"] * t["batch_size"]
    val = d["val_holdout"] * (3 * FWD + v["pgd"]["steps"] + v["cw"]["steps"])
    train = t["epochs"] * (used * (t["attack"]["steps"] + 1) + val)
    aa = e["aa"]["apgd_ce"]["n_iter"] + 0.5 * 9 * e["aa"]["apgd_t"]["n_iter"]
    per_test = 5 * FWD + 1 + e["pgd"]["steps"] + e["cw"]["steps"] + aa
    evaluation = d["test_limit"] * per_test + 95 * d["corruption_limit"] * FWD
    assert work_passes(cfg) == pytest.approx({"train": train, "eval": evaluation})
    full = split_sizes(load_preset("full"))
    assert full == {"train": 50_000, "val": 2_000, "test": 10_000, "corruption_cell": 10_000}


def test_fit_recovers_a_line_and_projection_sums():
    a, b = fit_cost([1e9, 2e9, 5e9], [0.002 + 1e-12 * m for m in (1e9, 2e9, 5e9)])
    assert a == pytest.approx(0.002) and b == pytest.approx(1e-12)
    cfg = load_preset("full")
    archs = [Arch.parse("4-8-4-8-4-8"), Arch.parse("5-10-5-10-5-10")]
    out = project(cfg, a, b, archs)
    w = work_passes(cfg)
    secs = [a + b * macs(x) for x in archs]
    assert out["train_device_days"] == pytest.approx(sum(s * w["train"] for s in secs) / 86400)
    assert out["eval_device_days"] == pytest.approx(sum(s * w["eval"] for s in secs) / 86400)


def test_sample_spans_the_space_and_measurement_is_a_time():
    s = sample_archs(3)
    assert [str(x) for x in s] == ["4-8-4-8-4-8", str(s[1]), "11-16-11-16-11-16"]
    cfg = load_preset("tiny")
    cfg["sweep"]["estimate"].update(steps=1, batch_size=4)
    sec = measure_pass_seconds(s[0], cfg, "cpu")
    assert 0 < sec < 5


def test_measurement_times_the_trainers_step(monkeypatch):
    """The estimate runs `nares.train.trainer.train_step` itself (warm-up + `steps` timed calls) with the preset's
    batch and train settings, on a network built the way the trainer builds it."""
    import torch

    import nares.train.trainer as trainer

    calls = []
    real = trainer.train_step

    def spy(model, net, x, y, optimizer, tr, gen, scaler):
        calls.append((tuple(x.shape), x.is_contiguous(memory_format=torch.channels_last), tr["precision"],
                      type(optimizer).__name__))
        return real(model, net, x, y, optimizer, tr, gen, scaler)

    monkeypatch.setattr(trainer, "train_step", spy)
    cfg = load_preset("tiny")
    cfg["sweep"]["estimate"].update(steps=3, batch_size=4)
    sec = measure_pass_seconds(Arch.parse("4-8-4-8-4-8"), cfg, "cpu")
    assert sec > 0
    assert calls == [((4, 3, 32, 32), cfg["train"]["channels_last"], "fp32", "SGD")] * 4
