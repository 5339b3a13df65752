"""AutoAttack's standard ensemble as the `autoattack` evaluation (APGD-CE, APGD-T, FAB-T, Square on the points
still robust) and FAB-T alone (`fab_t`): the evaluator's mask semantics, the ensemble equal to the attacks run
one after the other by hand, values and units, typed settings and their error lines, and the cost by hand."""

from __future__ import annotations

import copy
import itertools

import pytest
import torch
from torch import nn

from nares.attacks.apgd import apgd_targeted_with_mask, apgd_with_mask
from nares.attacks.fab import fab_targeted_with_mask
from nares.attacks.square import square_with_mask
from nares.attacks.suite import _attack_seed
from nares.config import load_preset
from nares.errors import ConfigError
from nares.evaluations import get_evaluation, suite, suite_cost
from nares.evaluations.autoattack import STAGES, Stage, run_stages
from nares.evaluations.base import EvalContext, Value
from tests.small_models import mislabelled_batch, preset_with

pytestmark = pytest.mark.usefixtures("one_thread")

N, LIMIT = 32, 20
EPS_255 = 3


@pytest.fixture(scope="module")
def setup() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """(small CNN in eval mode with BN statistics of random images, 32 random 3×16×16 images, labels = the model's
    predictions but for the first 4 points)."""
    return mislabelled_batch(N, 4)


@pytest.fixture(scope="module")
def cfg() -> dict:
    """The tiny preset with a deliberately weak AutoAttack (1 iteration of APGD, one target each) so that every
    gradient stage fools points the ones before it left; Square on the first 20 images."""
    c = copy.deepcopy(load_preset("tiny"))
    ev = c["eval"]
    ev.update(batch_size=12, eps_255=EPS_255, precision="fp32", seed=3)  # three batches of the first stage
    ev["autoattack"] = {
        "apgd_ce": {"n_iter": 1, "n_restarts": 1, "rho": 0.75},
        "apgd_t": {"n_iter": 1, "n_restarts": 1, "rho": 0.75, "n_target_classes": 1},
        "fab_t": {"n_iter": 2, "n_restarts": 1, "n_target_classes": 1, "alpha_max": 0.1, "eta": 1.05, "beta": 0.9},
        "square": {"n_queries": 40, "p_init": 0.8, "n_restarts": 1, "resc_schedule": False, "limit": LIMIT},
    }
    ev["fab_t"] = dict(ev["autoattack"]["fab_t"])
    return c


def test_run_stages_attacks_only_points_still_robust():
    """Spy stages: each sees exactly the points still robust (within its limit), in batches; flags only fall."""
    x = torch.arange(10.0).view(10, 1)
    y = torch.zeros(10, dtype=torch.long)
    robust = torch.tensor([True] * 8 + [False] * 2)  # points 8, 9: misclassified on x
    seen: dict[str, list[list[int]]] = {}

    def stage(name: str, breaks: set[int], limit: int | None = None) -> Stage:
        def attack(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
            ids = [int(v) for v in xb[:, 0]]
            seen.setdefault(name, []).append(ids)
            return torch.tensor([i not in breaks for i in ids])
        return Stage(name, attack, limit)

    acc_after, attacked = run_stages(x, y, robust, [stage("a", {0, 1}), stage("b", {1, 2, 9}),
                                                    stage("c", {3}, limit=5), stage("d", set())], batch_size=3)
    assert seen["a"] == [[0, 1, 2], [3, 4, 5], [6, 7]]
    assert seen["b"] == [[2, 3, 4], [5, 6, 7]]  # 0 and 1 are broken: never attacked again; 9 never was robust
    assert seen["c"] == [[3, 4]]  # the first 5 points only
    assert seen["d"] == [[4, 5, 6], [7]]
    assert attacked == {"a": 8, "b": 6, "c": 2, "d": 4}
    assert acc_after == {"a": 0.6, "b": 0.5, "c": 0.4, "d": 0.4}
    assert robust.tolist() == [False] * 4 + [True] * 4 + [False] * 2


def test_ensemble_equals_the_attacks_run_by_hand(setup, cfg):
    """The cell's flags are those of APGD-CE, APGD-T, FAB-T and Square each run on the points the previous ones
    left robust (one batch each here), with the evaluation's seeded generators; accuracy never rises."""
    model, x, y = setup
    ev = cfg["eval"]
    cfg_one = copy.deepcopy(cfg)
    cfg_one["eval"]["batch_size"] = N  # one batch per stage: the by-hand runs see the same batches
    aa = get_evaluation("autoattack")
    cell = aa.cell(EvalContext(cfg=cfg_one, model=model, x=x, y=y, device=torch.device("cpu")))

    s, eps = cfg["eval"]["autoattack"], EPS_255 / 255
    seed = {k: _attack_seed(ev["seed"], f"autoattack/{k}") for k in STAGES}
    with torch.no_grad():
        robust = model(x).argmax(1) == y
    runs = {
        "apgd_ce": lambda xs, ys: apgd_with_mask(model, xs, ys, eps=eps, **s["apgd_ce"],
                                                 generator=torch.Generator().manual_seed(seed["apgd_ce"]))[1],
        "apgd_t": lambda xs, ys: apgd_targeted_with_mask(model, xs, ys, eps=eps, **s["apgd_t"],
                                                         generator=torch.Generator().manual_seed(seed["apgd_t"]))[1],
        "fab_t": lambda xs, ys: fab_targeted_with_mask(model, xs, ys, eps=eps, **s["fab_t"],
                                                       generator=torch.Generator().manual_seed(seed["fab_t"]))[1],
        "square": lambda xs, ys: square_with_mask(
            model, xs, ys, eps=eps, **{k: v for k, v in s["square"].items() if k != "limit"},
            generator=torch.Generator().manual_seed(seed["square"]))[1],
    }
    by_hand, counts = [float(robust.double().mean())], []
    for name in STAGES:
        idx = robust.nonzero().squeeze(1)
        idx = idx[idx < LIMIT] if name == "square" else idx
        robust[idx] = runs[name](x[idx], y[idx])
        by_hand.append(float(robust.double().mean()))
        counts.append(len(idx))
    assert list(cell["acc_after"]) == list(STAGES)
    assert list(cell["acc_after"].values()) == by_hand[1:]
    assert list(cell["attacked"].values()) == counts
    assert cell["acc"] == by_hand[-1] == min(by_hand) and cell["n"] == N
    assert all(b <= a for a, b in itertools.pairwise(by_hand))
    assert by_hand[0] > by_hand[1] > by_hand[2] > by_hand[3] > 0  # each gradient stage bites; some points survive
    assert counts[0] == round(by_hand[0] * N) and counts[1] == round(by_hand[1] * N)  # the still-robust points

    # the evaluation's own batches (12 points) give a valid ensemble too, with the same mask semantics
    small = aa.cell(EvalContext(cfg=cfg, model=model, x=x, y=y, device=torch.device("cpu")))
    acc = [by_hand[0], *small["acc_after"].values()]
    assert all(b <= a for a, b in itertools.pairwise(acc)) and small["acc"] == acc[-1]
    assert small["attacked"]["apgd_ce"] == counts[0]
    assert [small["attacked"][k] for k in STAGES[1:3]] == [round(a * N) for a in acc[1:3]]


def test_fab_t_evaluation_is_the_attack(setup, cfg):
    model, x, y = setup
    cell = get_evaluation("fab_t").cell(EvalContext(cfg=cfg, model=model, x=x, y=y))
    g = torch.Generator().manual_seed(_attack_seed(cfg["eval"]["seed"], "fab_t"))
    robust = torch.cat([fab_targeted_with_mask(model, x[i:i + 12], y[i:i + 12], eps=EPS_255 / 255, generator=g,
                                               **cfg["eval"]["fab_t"])[1] for i in range(0, N, 12)])
    assert cell["acc"] == float(robust.double().mean())
    assert get_evaluation("fab_t").values(cell) == [Value("acc", "", 100 * cell["acc"])]


def test_values_and_units():
    aa = get_evaluation("autoattack")
    cell = {"acc": 0.25, "acc_after": {"apgd_ce": 0.5, "apgd_t": 0.375, "fab_t": 0.25, "square": 0.25},
            "attacked": {"apgd_ce": 6, "apgd_t": 4, "fab_t": 3, "square": 1}, "n": 8}
    assert aa.values(cell) == [
        Value("acc", "", 25.0), Value("acc_after", "apgd_ce", 50.0), Value("acc_after", "apgd_t", 37.5),
        Value("acc_after", "fab_t", 25.0), Value("acc_after", "square", 25.0), Value("attacked", "apgd_ce", 6.0),
        Value("attacked", "apgd_t", 4.0), Value("attacked", "fab_t", 3.0), Value("attacked", "square", 1.0)]
    assert dict(aa.units) == {"acc": "percent", "acc_after": "percent", "attacked": "count"}


def test_settings_are_typed_and_autoattacks():
    full = load_preset("full")
    s = get_evaluation("autoattack").settings(full)
    assert (s.eps_255, s.robust_fraction) == (8.0, 0.5)
    assert (s.apgd_ce.n_iter, s.apgd_ce.n_restarts, s.apgd_ce.rho) == (100, 1, 0.75)
    assert (s.apgd_t.n_iter, s.apgd_t.n_restarts, s.apgd_t.rho, s.apgd_t.n_target_classes) == (100, 1, 0.75, 9)
    assert (s.fab_t.n_iter, s.fab_t.n_restarts, s.fab_t.n_target_classes) == (100, 1, 9)
    assert (s.square.n_queries, s.square.p_init, s.square.n_restarts, s.square.resc_schedule) == (5000, 0.8, 1, False)
    assert suite(full, "autoattack") == ["clean", "autoattack"]
    tiny = get_evaluation("autoattack").settings(load_preset("tiny"))
    assert (tiny.apgd_ce.n_iter, tiny.fab_t.n_iter, tiny.square.n_queries, tiny.square.limit) == (10, 10, 100, 64)


@pytest.mark.parametrize(("name", "path", "value", "message"), [
    ("autoattack", ("fab_t", "n_target_classes"), 10,
     r"^eval\.autoattack\.fab_t\.n_target_classes is 10; expected at most model\.num_classes - 1 \(9\)$"),
    ("autoattack", ("apgd_t", "n_target_classes"), 12,
     r"^eval\.autoattack\.apgd_t\.n_target_classes is 12; expected at most model\.num_classes - 1 \(9\)$"),
    ("autoattack", ("square", "limit"), 0, r"^eval\.autoattack\.square\.limit is 0; expected null or an integer >= 1$"),
    ("autoattack", ("fab_t", "beta"), 1.5, r"^eval\.autoattack\.fab_t\.beta is 1\.5; expected a number in \(0, 1\]$"),
    ("autoattack", ("fab_t", "eta"), None, r"^eval\.autoattack\.fab_t\.eta is missing; expected a number > 0$"),
    ("autoattack", ("fab",), {}, r"^eval\.autoattack\.fab is not a setting \(the keys of eval\.autoattack are "),
    ("fab_t", ("n_iter",), 0, r"^eval\.fab_t\.n_iter is 0; expected an integer >= 1$"),
    ("fab_t", ("n_target_classes",), 10,
     r"^eval\.fab_t\.n_target_classes is 10; expected at most model\.num_classes - 1 \(9\)$"),
])
def test_bad_settings_are_one_line_naming_the_key(name, path, value, message):
    cfg = preset_with((name, *path), value)
    with pytest.raises(ConfigError, match=message) as err:
        suite_cost(cfg, {"test": 10}, "autoattack") if name == "autoattack" else get_evaluation(name).settings(cfg)
    assert "\n" not in str(err.value)


def test_bad_setting_in_the_params_file_names_the_preset(tmp_path):
    import yaml

    from nares.config import params_path

    doc = yaml.safe_load(params_path().read_text())
    doc["presets"]["full"]["eval"]["autoattack"]["square"]["n_queries"] = 0
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match=r"presets\.full\.eval\.autoattack\.square\.n_queries is 0; expected an "
                                          r"integer >= 1$"):
        load_preset("tiny", path)


def test_cost_by_hand():
    """Image-gradient passes at the full protocol (10,000 test images; a forward pass counts 1/3)."""
    from nares.sweep.estimate import work_passes

    full = load_preset("full")
    n, third, rf = 10_000, 1 / 3, 0.5  # rf: sweep.estimate.aa_robust_fraction, the share APGD-CE leaves robust
    clean = n * third
    apgd_ce = n * 100
    apgd_t = rf * n * 9 * 100
    # FAB-T per point: 1 clean pass, then per target: 1 ranking pass, 100 × (gradient + prediction), 1 check
    fab_t = rf * n * (9 * 100 + (1 + 9 * (1 + 100 + 1)) * third)
    square = rf * 1_000 * (1 + 5_000 + 2) * third  # the first 1,000 images, forward passes only
    autoattack = n * third + apgd_ce + apgd_t + fab_t + square  # its own clean pass first
    assert work_passes(full, "autoattack")["eval"] == pytest.approx(clean + autoattack, rel=1e-12)
    fab = get_evaluation("fab_t")
    assert fab.cost(fab.settings(full), n) == pytest.approx(n * third + n * 900 + n * (1 + 9 * 102) * third)
