"""The evaluation registry, suites, typed settings, cost model and values (nares.evaluations)."""

from __future__ import annotations

import copy

import pytest
import torch

from nares.attacks.suite import _attack_seed, attack_settings, evaluate_attacks
from nares.config import load_preset
from nares.errors import ConfigError
from nares.evaluations import (
    NARES_SUITE,
    EvalContext,
    Value,
    evaluation_names,
    get_evaluation,
    suite,
    suite_cost,
)
from nares.spaces import get_space
from nares.sweep.estimate import split_sizes, work_passes


@pytest.fixture(scope="module")
def tiny():
    return load_preset("tiny")


def test_registry_and_default_suite(tiny):
    assert list(NARES_SUITE) == ["clean", "fgsm", "pgd", "cw", "aa", "corruptions", "complexity"]
    assert set(NARES_SUITE) <= set(evaluation_names())
    assert suite(tiny) == list(NARES_SUITE)
    with pytest.raises(ConfigError, match=r"^unknown evaluation 'fab' \(known: clean, fgsm, pgd, cw, aa,"):
        get_evaluation("fab")
    with pytest.raises(ConfigError, match=r"^unknown suite 'x' \(the preset's suites: nares, jung, wsr, proxies, autoattack, "
                                         r"robnet\)$"):
        suite(tiny, "x")


def test_named_suite_from_preset(tiny):
    cfg = copy.deepcopy(tiny)
    cfg["eval"]["suites"] = {"quick": ["clean", "fgsm"], "bad": ["clean", "nope"]}
    cfg["eval"]["suite"] = "quick"
    assert suite(cfg) == ["clean", "fgsm"]
    assert suite(cfg, "nares") == list(NARES_SUITE)
    with pytest.raises(ConfigError, match="unknown evaluation 'nope'"):
        suite(cfg, "bad")


def test_settings_are_typed_and_checked(tiny):
    s = get_evaluation("cw").settings(tiny)
    assert (s.eps_255, s.steps, s.step_255, s.init, s.kappa) == (8.0, 20, 1.6, "uniform", 0.0)
    aa = get_evaluation("aa").settings(tiny)
    assert (aa.apgd_ce.n_iter, aa.apgd_t.n_target_classes, aa.robust_fraction) == (10, 9, 0.5)
    cfg = copy.deepcopy(tiny)
    cfg["eval"]["pgd"]["steps"] = 0
    with pytest.raises(ConfigError, match=r"^eval\.pgd\.steps is 0; expected an integer >= 1$"):
        suite(cfg)
    cfg = copy.deepcopy(tiny)
    cfg["eval"]["eps_255"] = -1
    with pytest.raises(ConfigError, match=r"^eval\.fgsm\.eps_255 is -1; expected a number >= 0$"):
        get_evaluation("fgsm").settings(cfg)


@pytest.mark.parametrize("preset", ["full", "tiny"])
def test_cost_model_is_the_sweep_estimate(preset):
    cfg = load_preset(preset)
    n = split_sizes(cfg)
    total = suite_cost(cfg, {"test": n["test"], "corruptions": n["corruption_cell"]})
    assert total == pytest.approx(work_passes(cfg)["eval"], rel=1e-12)
    if preset == "full":  # by hand: 10,000 × (1/3 + 4/3 + 61/3 + 121/3 + 100 + 0.5·900 + 1/3) + 95·10,000/3
        assert total == pytest.approx(10_000 * (188 / 3 + 550) + 95 * 10_000 / 3)
    assert get_evaluation("complexity").cost(get_evaluation("complexity").settings(cfg), 10) == 0.0


def test_values_in_declared_units():
    pgd = get_evaluation("pgd")
    vals = pgd.values({"acc": 0.5, "loss": 1.25, "stable": 0.07, "lip": 3.0, "n": 4})
    assert vals == [Value("acc", "", 50.0), Value("loss", "", 1.25), Value("stable", "", 7.0),
                    Value("lip", "", 3.0)]
    assert 7.0 / 100 == 0.07  # the canonical percentage of 0.07 (7.000000000000001 = 0.07·100 is not it)
    assert get_evaluation("aa").values({"acc": 0.25, "loss": 2.0, "stable": None, "lip": None, "n": 4}) == [
        Value("acc", "", 25.0), Value("loss", "", 2.0)]
    corr = get_evaluation("corruptions").values({"fog": {"1": {"acc": 0.75, "loss": 0.5}}})
    assert corr == [Value("acc", "fog/1", 75.0), Value("loss", "fog/1", 0.5)]
    assert get_evaluation("complexity").values({"params": 12, "macs": 34, "width_base": 1}) == [
        Value("params", "", 12.0), Value("macs", "", 34.0)]


def _model_and_data():
    torch.manual_seed(0)
    space = get_space("wrn")
    model = space.build_model(space.parse("4-8-4-8-4-8"), 1).eval()
    x = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    y = torch.randint(0, 10, (6,))
    return model, x, y


def test_compute_equals_todays_cells(tiny):
    model, x, y = _model_and_data()
    cfg = copy.deepcopy(tiny)
    cfg["eval"]["batch_size"] = 4  # two batches: the generator carries across them
    ev_cfg = cfg["eval"]
    for name in ("clean", "fgsm", "pgd"):
        ev = get_evaluation(name)
        ctx = EvalContext(cfg=cfg, model=model, x=x, y=y)
        m = evaluate_attacks(model, x, y, ev_cfg, names=[name], batch_size=4, precision=ev_cfg["precision"],
                             seed=ev_cfg["seed"])[name]  # the suite's own numbers, as the evaluator keeps them
        assert ev.cell(ctx) == m.to_dict()
        assert ev.compute(ctx) == ev.values(m.to_dict())


def test_attack_is_the_suites_attack(tiny):
    """PGD's own attack with the suite's generator for its name gives the suite's robust accuracy."""
    model, x, y = _model_and_data()
    ev = tiny["eval"]
    pgd = get_evaluation("pgd")
    gen = torch.Generator().manual_seed(_attack_seed(ev["seed"], "pgd"))
    x_adv = pgd.attack(model, x.float() / 255, y, attack_settings(ev, "pgd"), generator=gen, precision="fp32")
    with torch.no_grad():
        acc = (model(x_adv).argmax(1) == y).double().mean().item()
    ref = evaluate_attacks(model, x, y, ev, names=["pgd"], batch_size=6, precision="fp32", seed=ev["seed"])["pgd"]
    assert acc == ref.acc


def test_the_neighbour_suites_cost_by_hand():
    """Image-gradient passes of the named suites at the full protocol (10,000 test images), counted by hand."""
    from nares.sweep.estimate import work_passes

    full = load_preset("full")
    third = 1 / 3
    n = 10_000
    fgsm_eps = 11 * n * (1 + third)
    pgd_eps = 8 * n * (40 + third)
    apgd_eps = 8 * n * (100 + third)  # APGD-CE, 100 iterations, + the cell's forward pass, at 8 ε
    square_eps = 8 * 1_000 * (1 + 5_000 + 2 + 1) * third  # the first 1,000 images, forward passes only, at 8 ε
    corruptions_cm = 15 * 5 * n * third  # Jung et al.'s 15 corruptions × 5 severities, forward only
    jacobian = 2 * 2 * 2_560 * 10  # train and test, trained and at initialisation, 10 projections each
    hessian = 2 * 2 * 2_560 * 2 * 20  # two gradient passes per Hessian-vector product, 20 iterations
    confusion = n * third
    masking = 256 * (1 + 2 * third)  # two forward passes and one gradient on the first 256 images
    assert work_passes(full, "jung")["eval"] == pytest.approx(
        confusion + fgsm_eps + pgd_eps + apgd_eps + square_eps + corruptions_cm + jacobian + hessian + masking)
    assert work_passes(full, "wsr")["eval"] == pytest.approx(n * third + 4 * n * (20 + third))
    assert work_passes(full, "proxies")["eval"] == pytest.approx(jacobian + hessian)
    with pytest.raises(ConfigError, match="unknown suite 'nope'"):
        work_passes(full, "nope")
