"""The published record layout: units, validation messages, jsonl I/O and the percent ⇄ fraction rule."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from nares.records import (
    RecordError,
    build_record,
    count_from_published,
    fraction_from_pct,
    iter_jsonl,
    pct_from_fraction,
    read_jsonl,
    validate_record,
    write_jsonl,
)
from nares.spaces import wrn as complexity
from nares.spaces.wrn import Arch


def make_inputs(epochs: int = 3) -> tuple[dict, dict]:
    """Trainer/evaluator outputs (fractions) for one architecture, values chosen by hand."""
    train = {
        "seed": 7,
        "gpu_type": "cpu",
        "timestamp": "2025-03-04",
        "training_time": 0.0125,
        "best_epoch": 1,
        "train_loss": [2.1, 1.9, 1.8],
        "train_acc": [0.25, 0.3125, 0.5347],
        "val_loss": [2.0, 1.95, 1.97],
        "val_acc": [0.3, 0.41, 0.405],
        "pgd": [0.1, 0.2, 0.19],
        "pgd_stable": [0.5, 0.55, 0.56],
        "pgd_lip": [3.5, 3.25, 3.0],
        "pgd_loss": [2.3, 2.2, 2.25],
        "cw": [0.09, 0.18, 0.17],
        "cw_stable": [0.45, 0.5, 0.52],
        "cw_lip": [4.0, 3.5, 3.75],
        "cw_loss": [0.4, 0.3, 0.35],
    }
    train = {k: (v[:epochs] if isinstance(v, list) else v) for k, v in train.items()}
    test = {
        "test_clean_acc": 0.5213,
        "test_loss": 1.4,
        "Linf_fgsm_acc": 0.3,
        "Linf_fgsm_stable": 0.6,
        "Linf_pgd_acc": 0.25,
        "Linf_pgd_stable": 0.55,
        "Linf_pgd_lip": 3.1,
        "Linf_cw_acc": 0.24,
        "Linf_cw_stable": 0.5,
        "Linf_cw_lip": 3.3,
        "Linf_aa_acc": 0.2,
        "corruptions": {"fog": {"1": {"acc": 0.5, "loss": 1.5}, "2": {"acc": 0.45, "loss": 1.6}}},
    }
    return train, test


def make_record(arch: str = "4-8-4-8-4-8", arch_id: int = 1) -> dict:
    train, test = make_inputs()
    a = Arch.parse(arch)
    return build_record(
        arch_id=arch_id, arch=a, params=complexity.params(a), macs=complexity.macs(a), train=train, test=test
    )


def test_build_record_units_match_the_published_layout():
    rec = make_record()
    # The design-space table's values for 4-8-4-8-4-8 (PROTOCOL §4).
    assert rec["Params"] == 23.354842 and rec["MACs"] == 3361.936896
    assert rec["arch"] == {"D1": 4, "W1": 8, "D2": 4, "W2": 8, "D3": 4, "W3": 8}
    assert list(rec) == ["arch_id", "arch", "MACs", "Params", "train", "test_best"]
    tr, tb = rec["train"][0], rec["test_best"][0]
    assert tr["train_acc"] == [25.0, 31.25, 53.47]
    assert tr["val_acc"] == [30.0, 41.0, 40.5]
    assert tr["pgd_lip"] == [3.5, 3.25, 3.0] and tr["cw_loss"] == [0.4, 0.3, 0.35]  # raw, not scaled
    assert tr["best_epoch"] == 1 and tr["training_time"] == 0.0125 and tr["timestamp"] == "2025-03-04"
    assert tb["test_clean_acc"] == 52.13 and tb["Linf_aa_acc"] == 20.0 and tb["test_loss"] == 1.4
    assert tb["Linf_cw_lip"] == 3.3
    assert tb["corruptions"] == {"fog": {"1": {"acc": 50.0, "loss": 1.5}, "2": {"acc": 45.0, "loss": 1.6}}}


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r.pop("MACs"), "lacks 'MACs'"),
        (lambda r: r["arch"].update(D1=6), "depth1=6"),
        (
            lambda r: r["train"][0]["val_acc"].__setitem__(2, 140.0),
            "train[0].val_acc[2]=140.0 is not a percentage",
        ),
        (lambda r: r["train"][0]["pgd_loss"].append(1.0), "train[0].pgd_loss has 4 epochs, train_loss has 3"),
        (lambda r: r["train"][0].update(best_epoch=3), "best_epoch=3 is not an epoch index in 0..2"),
        (lambda r: r["train"][0].update(timestamp="2025/03/04"), "timestamp='2025/03/04' is not YYYY-MM-DD"),
        (lambda r: r["test_best"].append({}), "test_best must be a list holding exactly one object"),
        (lambda r: r["test_best"][0].update(Linf_pgd_acc="25"), "Linf_pgd_acc='25' is not a finite number"),
        (
            lambda r: r["test_best"][0]["corruptions"]["fog"].update({"6": {"acc": 1.0, "loss": 1.0}}),
            "corruptions.fog must map",
        ),
        (
            lambda r: r["test_best"][0]["corruptions"]["fog"]["1"].update(acc=-1.0),
            "corruptions.fog.1.acc=-1.0",
        ),
        (lambda r: r.update(arch_id=0), "arch_id=0 is not a positive integer"),
    ],
)
def test_validate_record_names_the_bad_field(mutate, message):
    rec = copy.deepcopy(make_record())
    mutate(rec)
    with pytest.raises(
        RecordError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")
    ):
        validate_record(rec)


def test_build_record_rejects_fractions_out_of_range():
    train, test = make_inputs()
    test["Linf_pgd_acc"] = 1.5
    with pytest.raises(RecordError, match="Linf_pgd_acc=150.0 is not a percentage"):
        a = Arch.parse("4-8-4-8-4-8")
        build_record(arch_id=1, arch=a, params=1, macs=1, train=train, test=test)


def test_counts_read_as_raw_integers_or_millions():
    assert count_from_published(23.354842, "Params") == 23_354_842
    assert count_from_published(23_354_842, "Params") == 23_354_842
    assert count_from_published(3361.936896, "MACs") == 3_361_936_896
    with pytest.raises(RecordError, match="MACs=-1.0"):
        count_from_published(-1.0, "MACs")


def test_percent_fraction_round_trip_is_exact():
    # Every published-style percentage 100·k/N (N = 10,000 test / 2,000 validation images) and every
    # percentage with few decimals comes back bit-identical through the fraction.
    for n in (10_000, 2_000, 500, 256):
        p = 100.0 * np.arange(n + 1) / n
        assert np.array_equal(pct_from_fraction(fraction_from_pct(p)), p)
    short = np.round(np.random.default_rng(0).uniform(0, 100, 50_000), 4)
    assert np.array_equal(pct_from_fraction(fraction_from_pct(short)), short)
    # Every percentage the project itself writes is stable, and p/100 gives back the fraction it stores.
    f = np.random.default_rng(1).random(200_000)
    p = pct_from_fraction(f)
    assert np.array_equal(pct_from_fraction(fraction_from_pct(p)), p)
    assert np.max(np.abs(p - 100 * f)) < 1e-13
    assert (
        pct_from_fraction(0.5347) == 53.47
        and pct_from_fraction(1.0) == 100.0
        and pct_from_fraction(None) is None
    )
    assert pct_from_fraction([0.1, None]) == [10.0, None]


def test_jsonl_write_read(tmp_path):
    recs = [make_record("4-8-4-8-4-8", 1), make_record("5-10-5-10-5-10", 2)]
    path = tmp_path / "cifar10.jsonl"
    assert write_jsonl(path, recs) == 2
    lines = path.read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[1])["arch"] == {
        "D1": 5,
        "W1": 10,
        "D2": 5,
        "W2": 10,
        "D3": 5,
        "W3": 10,
    }
    assert read_jsonl(path) == recs and list(iter_jsonl(path)) == recs
    assert [p.name for p in tmp_path.iterdir()] == ["cifar10.jsonl"]  # no temporary file left behind
    (tmp_path / "bad.jsonl").write_text('{"arch_id": 1}\n{oops\n')
    with pytest.raises(RecordError, match=r"bad.jsonl:2: not JSON"):
        read_jsonl(tmp_path / "bad.jsonl")
    with pytest.raises(RecordError, match="does not exist"):
        read_jsonl(tmp_path / "missing.jsonl")
