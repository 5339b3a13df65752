"""Synthetic records: published layout, protocol invariants and the planted structure tests rely on."""

from __future__ import annotations

import numpy as np
import pytest

from nares.constants import CORRUPTIONS
from nares.errors import NaresError
from nares.records import validate_record
from nares.spaces import wrn as complexity
from nares.spaces.wrn import DEPTHS, N_ARCHS, SPACE, WIDTHS, Arch, all_archs, arch_id
from nares.synthetic import (
    PENALTY_WEIGHTS,
    PLANTED_OPTIMUM,
    VAL_NOISE_BOUND,
    VAL_PGD_BASE,
    planted_val_pgd,
    synthetic_records,
)

WRN_34_10 = Arch.parse("5-10-5-10-5-10")
SMALLEST = Arch.parse("4-8-4-8-4-8")


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return synthetic_records(archs=[SMALLEST, WRN_34_10, PLANTED_OPTIMUM, *all_archs()[::997]], epochs=12)


def test_layout_ids_and_exact_complexity(records):
    for r in records:
        validate_record(r)
    ids = [r["arch_id"] for r in records]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    by_arch = {str(Arch.parse(r["arch"])): r for r in records}
    assert by_arch[str(SMALLEST)]["Params"] == 23.354842 and by_arch[str(SMALLEST)]["MACs"] == 3361.936896
    assert by_arch[str(WRN_34_10)]["Params"] == 46.160474
    assert by_arch[str(WRN_34_10)]["arch_id"] == arch_id(WRN_34_10)
    for r in records:
        a = Arch.parse(r["arch"])
        assert r["MACs"] * 1e6 == pytest.approx(complexity.macs(a), abs=0.5)
        assert len(r["train"][0]["pgd"]) == 12
        assert set(r["test_best"][0]["corruptions"]) == set(CORRUPTIONS)


def test_protocol_invariants(records):
    for r in records:
        tr, te = r["train"][0], r["test_best"][0]
        cw = np.array(tr["cw"])
        assert tr["best_epoch"] == int(np.argmax(cw)) and (cw < cw[tr["best_epoch"]]).sum() == len(cw) - 1
        assert te["test_clean_acc"] >= te["Linf_fgsm_acc"] >= te["Linf_pgd_acc"] >= te["Linf_aa_acc"]
        assert te["Linf_cw_acc"] >= te["Linf_aa_acc"]
        for robust, stable in (("Linf_fgsm_acc", "Linf_fgsm_stable"), ("Linf_pgd_acc", "Linf_pgd_stable"),
                               ("Linf_cw_acc", "Linf_cw_stable")):
            assert te[stable] >= te[robust]
        assert all(s >= p for s, p in zip(tr["pgd_stable"], tr["pgd"], strict=True))
        assert all(c >= p for c, p in zip(tr["val_acc"], tr["pgd"], strict=True))
        cells = [c["acc"] for sev in te["corruptions"].values() for c in sev.values()]
        assert len(cells) == 95 and max(cells) <= te["test_clean_acc"]
        assert te["Linf_pgd_lip"] > 0 and tr["training_time"] > 0


def test_planted_objective_within_noise_bound(records):
    for r in records:
        tr = r["train"][0]
        assert tr["pgd"][tr["best_epoch"]] / 100 == pytest.approx(planted_val_pgd(Arch.parse(r["arch"])),
                                                                  abs=VAL_NOISE_BOUND + 1e-9)
    assert planted_val_pgd(PLANTED_OPTIMUM) == VAL_PGD_BASE
    # hand value: 4-8-4-8-4-8 is (3,4,2,3,4,2) index steps from 9-16-7-14-11-12
    hand = VAL_PGD_BASE - sum(w * d * d / 16 for w, d in zip(PENALTY_WEIGHTS, (3, 4, 2, 3, 4, 2), strict=True))
    assert planted_val_pgd(SMALLEST) == pytest.approx(hand)


def test_every_non_optimum_has_a_better_neighbour_beyond_the_noise():
    idx = SPACE.digits(np.arange(N_ARCHS))
    opt = SPACE.digits(np.arange(N_ARCHS))[[a == PLANTED_OPTIMUM for a in all_archs()].index(True)]
    planted = VAL_PGD_BASE - ((idx - opt) ** 2 * np.array(PENALTY_WEIGHTS)).sum(axis=1) / 16
    assert planted[0] == pytest.approx(planted_val_pgd(all_archs()[0]))
    gain = planted[SPACE.neighbour_table()].max(axis=1) - planted
    non_opt = planted < VAL_PGD_BASE
    assert non_opt.sum() == N_ARCHS - 1
    assert gain[non_opt].min() > 2 * VAL_NOISE_BOUND


def test_values_do_not_depend_on_the_subset_and_options():
    a = synthetic_records(archs=[WRN_34_10, SMALLEST], epochs=5, seed=3)
    b = synthetic_records(archs=[WRN_34_10], epochs=5, seed=3, corruptions=False)
    assert a[1]["train"] == b[0]["train"]
    assert a[1]["test_best"][0]["Linf_aa_acc"] == b[0]["test_best"][0]["Linf_aa_acc"]
    assert b[0]["test_best"][0]["corruptions"] == {}
    c = synthetic_records(archs=[WRN_34_10], epochs=5, seed=4)
    assert c[0]["train"][0]["pgd"] != a[1]["train"][0]["pgd"]
    assert len(synthetic_records(7, epochs=2, seed=1, corruptions=False)) == 7
    assert {DEPTHS[0], WIDTHS[0]} == {4, 8}


def test_bad_arguments_are_one_line_errors():
    with pytest.raises(NaresError, match="epochs=0"):
        synthetic_records(3, epochs=0)
    with pytest.raises(NaresError, match="n=0"):
        synthetic_records(0)
