"""The sweep cost model: work counted by hand for the `tiny` preset, an exact fit, and the projection."""

from __future__ import annotations

import pytest

from nares.complexity import macs
from nares.config import load_preset
from nares.space import Arch
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
