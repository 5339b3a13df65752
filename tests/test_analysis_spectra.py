"""The robustness analyses of the long-table report on planted values: Kendall τ of proxies with (attack, ε) and
of clean with corrupted accuracy (±1 for monotone plants, 13/15 for one swapped pair of six), the ε curves' mean and
std, the spread at equal parameter count, and each section only when the table holds what it needs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nares.analysis.long_report import build_results_report
from nares.analysis.spectra_report import equal_params_spread
from nares.results.build import LongBuilder
from nares.spaces.nb201 import SPACE, representatives

MEAN_ADV = np.array([20.0, 41.0, 30.0, 10.0, 12.0, 55.0])  # planted mean adversarial accuracy per arch
CLEAN = np.array([60.0, 70.0, 65.0, 40.0, 45.0, 90.0])  # same order as MEAN_ADV
SWAPPED = np.array([3.0, 4.0, 5.0, 1.0, 2.0, 6.0])  # the order of MEAN_ADV with one adjacent pair swapped
PARAMS = [100_000, 100_000, 100_000, 200_000, 200_000, 300_000]
PGD = {"0.5": 6.0, "2": 0.0, "8": -6.0}  # offsets around the mean: the mean over ε is MEAN_ADV
FGSM = {"1": 3.0, "255": -3.0}


def _table(*, proxies: bool = True, corruptions: bool = True, spectra: bool = True):
    b = LongBuilder()
    archs = representatives()[10:16]
    for i, a in enumerate(archs):
        base = {"dataset": "cifar10", "space": "nb201", "arch_id": i + 1, "arch": SPACE.format(a), "seed": 0,
                "checkpoint": "best"}
        b.add(1, [CLEAN[i]], evaluation="confusion", metric="acc", key="", **base)
        b.add(2, [PARAMS[i], 1000 + i], evaluation="complexity", metric=["params", "macs"], key="", **base)
        if spectra:
            b.add(3, [MEAN_ADV[i] + d for d in PGD.values()], evaluation="pgd_eps", metric="acc", key=list(PGD), **base)
            b.add(2, [MEAN_ADV[i] + d for d in FGSM.values()], evaluation="fgsm_eps", metric="acc", key=list(FGSM),
                  **base)
            b.add(2, [5.0, 1.0], evaluation="pgd_eps", metric="cm", key=["0.5/0/0", "0.5/0/1"], **base)  # matrices
        if proxies:
            b.add(2, [-2 * MEAN_ADV[i], SWAPPED[i]], evaluation="jacobian", metric="frobenius",
                  key=["test", "train"], **base)
            b.add(1, [MEAN_ADV[i] ** 2], evaluation="hessian", metric="top_eig", key="test@init", **base)
            b.add(2, [-MEAN_ADV[i], 7.0], evaluation="hessian", metric="top_eig", key=["train@init", "test@init"],
                  **{**base, "checkpoint": "init"})  # `nares proxies`: read where the best checkpoint has none
            b.add(1, [1.0], evaluation="hessian", metric="converged", key="test@init", **base)
        if corruptions:
            b.add(3, [CLEAN[i] - 5, 100 - CLEAN[i], SWAPPED[i]], evaluation="corruptions_cm", metric="acc",
                  key=["fog/1", "fog/2", "snow/1"], **base)
            b.add(1, [3.0], evaluation="corruptions_cm", metric="cm", key="fog/1/0/0", **base)
        b.add(1, [0.0], evaluation="pgd_eps", metric="acc", key="8", **{**base, "checkpoint": "last"})  # not read
    return b.table()


def _report(tmp_path, **kw):
    page = build_results_report(_table(**kw), SPACE, tmp_path, evaluation="confusion", metric="acc")
    return json.loads((tmp_path / "report.json").read_text()), page.read_text()


def test_kendall_matrices_on_planted_values(tmp_path):
    stats, page = _report(tmp_path)
    k = stats["kendall_proxy_attack"]
    assert k["rows"] == ["Jacobian ‖J‖F [test]", "Jacobian ‖J‖F [train]", "Hessian λmax [test@init]",
                         "Hessian λmax [train@init]"]
    assert k["columns"] == ["clean", "FGSM 1/255", "FGSM 255/255", "PGD 0.5/255", "PGD 2/255", "PGD 8/255"]
    tau = np.array(k["tau"])
    np.testing.assert_allclose(tau[0], -1.0)  # ‖J‖ = −2 · accuracy: exactly anti-monotone
    np.testing.assert_allclose(tau[1], 13 / 15)  # one discordant pair of 15
    np.testing.assert_allclose(tau[2], 1.0)  # λ = accuracy² (the evaluated checkpoint's, not the constant 7)
    np.testing.assert_allclose(tau[3], -1.0)  # at initialisation, from checkpoint "init"
    assert k["architectures"] == 6 and k["pairs"] == 6
    c = stats["kendall_clean_corruption"]
    assert c["rows"] == ["fog", "snow"] and c["severities"] == [1, 2] and c["corruptions"] == "corruptions_cm"
    assert c["tau"][0] == pytest.approx([1.0, -1.0]) and c["tau"][1][0] == pytest.approx(13 / 15)
    assert c["tau"][1][1] is None  # snow has no severity 2
    for name in ("kendall_proxy_attack.png", "kendall_clean_corruption.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG" and f'src="{name}"' in page


def test_curves_and_the_spread_at_equal_params(tmp_path):
    stats, page = _report(tmp_path)
    pgd = stats["robust_accuracy_curves"]["pgd_eps"]
    assert pgd["eps"] == [0.5, 2.0, 8.0] and pgd["architectures"] == 6
    np.testing.assert_allclose(pgd["mean"], MEAN_ADV.mean() + np.array(list(PGD.values())))
    np.testing.assert_allclose(pgd["std"], [MEAN_ADV.std()] * 3)
    assert pgd["min"][1] == 10.0 and pgd["max"][1] == 55.0
    assert pgd["clean"] == {"mean": pytest.approx(CLEAN.mean()), "std": pytest.approx(CLEAN.std())}
    assert stats["robust_accuracy_curves"]["fgsm_eps"]["eps"] == [1.0, 255.0]
    s = stats["equal_params_spread"]
    assert s["measure"] == "mean adversarial accuracy (%): mean over fgsm_eps (2 ε), pgd_eps (3 ε)"
    assert [(g["params"], g["n"]) for g in s["groups"]] == [(100_000, 3), (200_000, 2)]  # the singleton is left out
    w = s["widest"]
    archs = [SPACE.format(a) for a in representatives()[10:16]]
    assert (w["params"], w["n"], w["min"], w["max"], w["spread"]) == (100_000, 3, 20.0, 41.0, 21.0)
    assert w["mean"] == pytest.approx(91 / 3) and (w["min_arch"], w["max_arch"]) == (archs[0], archs[1])
    assert s["per_evaluation"]["pgd_eps"]["spread"] == 21.0
    assert stats["robustness_dataset"] == "cifar10"
    assert "<b>20.00 % to 41.00 %</b>" in page and 'src="equal_params_spread.png"' in page
    assert 'src="robust_accuracy_vs_eps.png"' in page


def test_sections_appear_only_with_their_data(tmp_path):
    stats, page = _report(tmp_path / "a", proxies=False, corruptions=False)
    assert "kendall_proxy_attack" not in stats and "kendall_clean_corruption" not in stats
    assert "robust_accuracy_curves" in stats and "equal_params_spread" in stats
    assert not (tmp_path / "a" / "kendall_proxy_attack.png").exists()
    stats, page = _report(tmp_path / "b", spectra=False, proxies=False)
    assert "kendall_clean_corruption" in stats
    assert not {"kendall_proxy_attack", "robust_accuracy_curves", "equal_params_spread"} & set(stats)
    assert "Robustness summary" not in page


def test_equal_params_spread_by_hand():
    params = np.array([5.0, 5.0, 7.0, 7.0, 7.0, 9.0, np.nan])
    values = np.array([1.0, 4.0, 2.0, 8.0, 5.0, 100.0, 50.0])
    s = equal_params_spread(params, values, list("abcdefg"))
    assert [g["params"] for g in s["groups"]] == [5, 7] and s["architectures"] == 6
    assert s["widest"] == {"params": 7, "n": 3, "min": 2.0, "max": 8.0, "mean": 5.0, "spread": 6.0, "min_arch": "c",
                           "max_arch": "d"}
    tie = equal_params_spread(np.array([5.0, 5.0, 7.0, 7.0]), np.array([0.0, 3.0, 1.0, 4.0]), list("abcd"))
    assert tie["widest"]["params"] == 5  # equal spreads and sizes: the smaller count
    assert equal_params_spread(np.array([1.0, 2.0]), np.array([3.0, 4.0]), ["a", "b"]) is None
