"""The Jacobian and Hessian proxies on the train split too (PROTOCOL §7.2) and at initialisation over a search space
(`nares proxies`): every value against a direct call of the estimator with the same seed and images; the evaluator
loading the first training images only for evaluations that need them; the cost model; resume of the long rows."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pytest
import torch
import yaml

from factory.cli import main
from nares.attacks.suite import _attack_seed
from nares.config import load_preset
from nares.data import load_splits
from nares.errors import ConfigError
from nares.evaluate import evaluate_run
from nares.evaluations import EvalContext, get_evaluation
from nares.evaluations.proxies import arch_seed, split_seed
from nares.io import sha256_file
from nares.proxies import ProxyError, hessian_top_eigenvalue, jacobian_frobenius, over_batches
from nares.results.store import read_results
from nares.spaces import get_space, space_for
from nares.train.checkpoints import checkpoint_path, cpu_state_dict, save_checkpoint, write_done
from nares.train.runtime import training_hash

pytestmark = pytest.mark.usefixtures("one_thread")


def _jac(model, batches, n_projections: int, seed: int) -> float:
    """The mean over batches of the batch-mean Jacobian estimate, projections from one generator of `seed`."""
    g = torch.Generator().manual_seed(seed)
    return over_batches(lambda b: jacobian_frobenius(model, b[0], n_projections=n_projections, generator=g,
                                                     reduction="mean"), batches)


def _batches(x, y, n: int, size: int):
    return [(x[i:i + size], y[i:i + size]) for i in range(0, min(len(x), n * size), size)]


def _fresh(space, arch, cfg, seed: int):
    torch.manual_seed(seed)
    return space.build_model(arch, cfg["model"]["width_base"], num_classes=cfg["model"]["num_classes"]).eval()


# ---------------------------------------------------------------- the train split in the evaluation


@pytest.fixture(scope="module")
def setup():
    cfg = copy.deepcopy(load_preset("tiny"))
    cfg["eval"]["jacobian"] = {"n_projections": 2, "batches": 2, "batch_size": 6, "at_init": True,
                               "splits": ["train", "test"]}
    cfg["eval"]["hessian"] = {"iterations": 3, "tol": 1e-2, "batches": 2, "batch_size": 4, "at_init": True,
                              "splits": ["train", "test"]}
    space = get_space("wrn")
    arch = space.parse("4-8-4-8-4-8")
    torch.manual_seed(0)
    model = space.build_model(arch, 1).eval()
    g = torch.Generator().manual_seed(9)
    x, y = torch.rand(20, 3, 32, 32, generator=g), torch.randint(0, 10, (20,), generator=g)
    xt, yt = torch.rand(30, 3, 32, 32, generator=g), torch.randint(0, 10, (30,), generator=g)
    return cfg, space, arch, model, (x, y), (xt, yt)


def test_jacobian_on_both_splits_equals_direct_calls(setup):
    cfg, space, arch, model, (x, y), (xt, yt) = setup
    seed = cfg["eval"]["seed"]
    cell = get_evaluation("jacobian").cell(EvalContext(cfg=cfg, model=model, x=x, y=y, x_train=xt, y_train=yt,
                                                       arch=arch, space=space))
    assert list(cell) == ["test", "test@init", "train", "train@init"]
    fresh = _fresh(space, arch, cfg, _attack_seed(seed, "jacobian"))  # the architecture at initialisation
    # one generator per split, shared in order by the trained model and the one at initialisation; the test
    # split's seed is the one of the values computed before the train split existed
    g = torch.Generator().manual_seed(_attack_seed(seed, "jacobian"))
    test_batches = _batches(x, y, 2, 6)
    for key, m in (("test", model), ("test@init", fresh)):
        want = over_batches(lambda b, m=m: jacobian_frobenius(m, b[0], n_projections=2, generator=g,
                                                              reduction="mean"), test_batches)
        assert cell[key] == want
    g = torch.Generator().manual_seed(_attack_seed(seed, "jacobian/train"))
    train_batches = _batches(xt, yt, 2, 6)  # the first 12 training images, in order
    for key, m in (("train", model), ("train@init", fresh)):
        want = over_batches(lambda b, m=m: jacobian_frobenius(m, b[0], n_projections=2, generator=g,
                                                              reduction="mean"), train_batches)
        assert cell[key] == want
    assert cell["train"] != cell["test"] and cell["train@init"] != cell["train"]
    # the test values do not depend on whether the train split runs too
    test_only = copy.deepcopy(cfg)
    test_only["eval"]["jacobian"]["splits"] = ["test"]
    alone = get_evaluation("jacobian").cell(EvalContext(cfg=test_only, model=model, x=x, y=y, arch=arch, space=space))
    assert alone == {"test": cell["test"], "test@init": cell["test@init"]}


def test_hessian_on_both_splits_equals_direct_calls(setup):
    cfg, space, arch, model, (x, y), (xt, yt) = setup
    seed = cfg["eval"]["seed"]
    ev = get_evaluation("hessian")
    cell = ev.cell(EvalContext(cfg=cfg, model=model, x=x, y=y, x_train=xt, y_train=yt, arch=arch, space=space))
    fresh = _fresh(space, arch, cfg, _attack_seed(seed, "hessian"))
    for split, data, name in (("test", (x, y), "hessian"), ("train", (xt, yt), "hessian/train")):
        g = torch.Generator().manual_seed(_attack_seed(seed, name))
        for key, m in ((split, model), (f"{split}@init", fresh)):
            runs = [hessian_top_eigenvalue(m, *b, iterations=3, tol=1e-2, generator=g) for b in _batches(*data, 2, 4)]
            assert cell["top_eig"][key] == sum(r[0] for r in runs) / len(runs)
            assert cell["converged"][key] == sum(r[1] for r in runs) / len(runs)
    rows = {(v.metric, v.key) for v in ev.values(cell)}
    assert rows == {(m, k) for m in ("top_eig", "converged") for k in ("test", "test@init", "train", "train@init")}


def test_train_only_and_missing_train_images(setup):
    cfg, space, arch, model, (x, y), (xt, yt) = setup
    cfg = copy.deepcopy(cfg)
    cfg["eval"]["jacobian"].update(splits=["train"], at_init=False)
    ev = get_evaluation("jacobian")
    cell = ev.cell(EvalContext(cfg=cfg, model=model, x_train=xt, y_train=yt, arch=arch, space=space))
    assert cell == {"train": _jac(model, _batches(xt, yt, 2, 6), 2, _attack_seed(cfg["eval"]["seed"], "jacobian/train"))}
    with pytest.raises(ProxyError, match=r"^evaluation 'jacobian' has no train images \(EvalContext\.x_train is None\)"):
        ev.cell(EvalContext(cfg=cfg, model=model, x=x, y=y, arch=arch, space=space))
    assert ev.train_images(cfg) == 12 and ev.needs_train
    cfg["eval"]["jacobian"]["splits"] = ["test"]
    assert ev.train_images(cfg) == 0


@pytest.mark.parametrize("splits, message", [
    (["test", "test"], r"^eval\.jacobian\.splits is \['test', 'test'\]; expected distinct splits of train, test$"),
    (["val"], r"^eval\.jacobian\.splits is \['val'\]; expected a list of at least one item, each one of train, test$"),
    ([], r"^eval\.jacobian\.splits is \[\]; expected a list of at least one item"),
])
def test_bad_splits_are_one_line(splits, message):
    cfg = copy.deepcopy(load_preset("tiny"))
    cfg["eval"]["jacobian"]["splits"] = splits
    with pytest.raises(ConfigError, match=message):
        get_evaluation("jacobian").settings(cfg)


def test_cost_of_the_proxies_by_hand():
    """Images per split (test capped at the test images), twice with at_init; Jacobian: one pass per projection;
    Hessian: two passes per Hessian-vector product."""
    full = load_preset("full")
    jac, hes = get_evaluation("jacobian"), get_evaluation("hessian")
    images = 2 * 2 * 10 * 256  # train and test, trained and at initialisation, 10 batches of 256
    assert jac.cost(jac.settings(full), 10_000) == pytest.approx(images * 10)
    assert hes.cost(hes.settings(full), 10_000) == pytest.approx(images * 2 * 20)
    tiny = load_preset("tiny")
    assert jac.cost(jac.settings(tiny), 256) == pytest.approx((128 + 128) * 2 * 4)
    assert jac.cost(jac.settings(tiny), 100) == pytest.approx((100 + 128) * 2 * 4)  # fewer test images than asked
    assert hes.cost(hes.settings(tiny), 256) == pytest.approx((64 + 64) * 2 * 2 * 5)
    one = copy.deepcopy(tiny)
    one["eval"]["jacobian"].update(splits=["train"], at_init=False)
    assert jac.cost(jac.settings(one), 10) == pytest.approx(128 * 4)


def test_logits_that_do_not_depend_on_the_input_give_zero():
    """A network cut by zero ops (an NB201 cell whose edges are all `none`) computes logits from its parameters
    alone: ‖J‖_F = 0 and H = 0 (converged), not an autograd error; the projections are still drawn."""
    from torch import nn

    class Cut(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.zeros_like(x)

    model = nn.Sequential(Cut(), nn.Flatten(), nn.Linear(12, 3)).double()
    x = torch.rand(2, 3, 2, 2, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    assert jacobian_frobenius(model, x, n_projections=3, generator=g).tolist() == [0.0, 0.0]
    assert g.initial_seed() == 0 and not torch.equal(g.get_state(), torch.Generator().manual_seed(0).get_state())
    assert hessian_top_eigenvalue(model, x, torch.tensor([0, 2]), iterations=4, tol=1e-3) == (0.0, True, 0)
    cfg = load_preset("nb201-tiny")
    space = space_for(cfg)
    zero = space.parse("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    net = _fresh(space, zero, cfg, 1)
    data = {"train": (torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])),
            "test": (torch.rand(4, 3, 32, 32), torch.tensor([4, 5, 6, 7]))}
    cut = copy.deepcopy(cfg)
    cut["eval"]["jacobian"].update(batches=1, batch_size=4)
    cut["eval"]["hessian"].update(batches=1, batch_size=4)
    assert get_evaluation("jacobian").init_cell(cut, net, data, 7) == {"test@init": 0.0, "train@init": 0.0}
    assert get_evaluation("hessian").init_cell(cut, net, data, 7) == {
        "top_eig": {"test@init": 0.0, "train@init": 0.0}, "converged": {"test@init": 1.0, "train@init": 1.0}}


# ---------------------------------------------------------------- through the evaluator


def fake_run(out: Path, cfg: dict, arch_s: str, seed: int = 0) -> torch.nn.Module:
    """A finished run folder without training: `best` is the architecture initialised from `seed` (what
    `evaluate_run` checks: the preset, its training hash, the checkpoint's sha256)."""
    from nares.train.trainer import _checkpoint_meta, _space_meta

    space = space_for(cfg)
    arch = space.parse(arch_s)
    model = _fresh(space, arch, cfg, seed)
    save_checkpoint(out, "best", cpu_state_dict(model), _checkpoint_meta(arch, cfg, 0))
    write_done(out, {**_space_meta(cfg), "arch": space.format(arch), "preset": cfg["name"],
                     "preset_hash": training_hash(cfg), "seed": cfg["train"]["seed"], "history": {}, "best_epoch": 0,
                     "training_time_device_days": 0.0, "gpu_type": "cpu",
                     "checkpoints": {"best": {"sha256": sha256_file(checkpoint_path(out, "best")), "epoch": 0}}})
    return model


def micro(preset: str = "tiny") -> dict:
    cfg = copy.deepcopy(load_preset(preset))
    cfg["data"].update(train_limit=192, val_holdout=64, test_limit=64)
    cfg["train"]["channels_last"] = False  # the evaluator's tensors in the layout of the direct calls: equal bits
    cfg["eval"]["jacobian"] = {"n_projections": 2, "batches": 2, "batch_size": 10, "at_init": True,
                               "splits": ["train", "test"]}
    cfg["eval"]["hessian"] = {"iterations": 2, "tol": 1e-2, "batches": 1, "batch_size": 25, "at_init": False,
                              "splits": ["train"]}
    cfg["eval"]["pgd"].update(steps=2)
    cfg["eval"]["fsp"] = {"n_images": 6, "batch_size": 4}
    return cfg


def test_the_evaluator_loads_the_first_training_images(tmp_path, data_dir, monkeypatch):
    cfg = micro()
    model = fake_run(tmp_path, cfg, "4-8-4-8-4-8")
    splits = load_splits(cfg["data"], root=data_dir, seed=cfg["train"]["seed"])
    res = evaluate_run(tmp_path, cfg, device="cpu", splits=splits, metrics=["jacobian", "hessian", "fsp"])
    assert res["computed"] == ["jacobian", "hessian", "fsp"]
    jac, hes = res["cells"]["jacobian"], res["cells"]["hessian"]
    assert set(jac) == {"test", "test@init", "train", "train@init"} and set(hes["top_eig"]) == {"train"}
    xt, yt = splits.train.float01(), splits.train.y  # the run's training split (hold-out removed), unaugmented
    seed = cfg["eval"]["seed"]
    assert jac["train"] == _jac(model, _batches(xt, yt, 2, 10), 2, _attack_seed(seed, "jacobian/train"))
    x, y = splits.test.float01(), splits.test.y
    assert jac["test"] == _jac(model, _batches(x, y, 2, 10), 2, _attack_seed(seed, "jacobian"))
    g = torch.Generator().manual_seed(_attack_seed(seed, "hessian/train"))
    assert hes["top_eig"]["train"] == hessian_top_eigenvalue(model, xt[:25], yt[:25], iterations=2, tol=1e-2,
                                                             generator=g)[0]
    fsp = res["cells"]["fsp"]
    assert fsp["n"] == 6 and len(fsp["blocks"]) == 12
    again = evaluate_run(tmp_path, cfg, device="cpu", splits=splits, metrics=["jacobian", "hessian", "fsp"])
    assert again["computed"] == [] and again["reused"] == ["jacobian", "hessian", "fsp"]

    # CIFAR-10-C absent: corruptions_cm is skipped like corruptions; present: computed from the same files
    from tests.test_corruptions_cm import write_cifar10c_random

    monkeypatch.setenv("NARES_DATA_DIR", str(tmp_path / "no-data"))
    cfg["eval"]["corruptions_cm"] = {"corruptions": ["fog"], "severities": [1, 4]}
    cfg["data"]["corruption_limit"] = 4
    res = evaluate_run(tmp_path, cfg, device="cpu", splits=splits, metrics=["corruptions_cm"])
    assert res["skipped"] == {"corruptions_cm": "CIFAR-10-C files are not present"} and res["computed"] == []
    write_cifar10c_random(tmp_path / "c" / "cifar10-c", per=6)
    monkeypatch.setenv("NARES_DATA_DIR", str(tmp_path / "c"))
    res = evaluate_run(tmp_path, cfg, device="cpu", splits=splits, metrics=["corruptions_cm"])
    cm = res["cells"]["corruptions_cm"]
    assert res["computed"] == ["corruptions_cm"] and list(cm) == ["fog"] and list(cm["fog"]) == ["1", "4"]
    assert all(c["n"] == 4 and sum(map(sum, c["cm"])) == 4 for c in cm["fog"].values())


# ---------------------------------------------------------------- `nares proxies`: at initialisation, a whole space


NB201_CELLS = ("|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|skip_connect~0|none~1|avg_pool_3x3~2|",
               "|nor_conv_1x1~0|+|none~0|nor_conv_3x3~1|+|nor_conv_3x3~0|skip_connect~1|nor_conv_1x1~2|")


def _rows(out: Path) -> dict[tuple[int, str, str, str], dict]:
    return {(r["arch_id"], r["evaluation"], r["metric"], r["key"]): r for r in read_results(out).to_pylist()}


def _check_against_direct_calls(rows: dict, cfg: dict, data_dir: Path, evaluations: tuple[str, ...]) -> int:
    """Every row equals the estimator called on the architecture initialised from the row's seed, on the same
    images with the same generator seeds; returns the number of architectures checked."""
    space = space_for(cfg)
    splits = load_splits(cfg["data"], root=data_dir, seed=cfg["train"]["seed"])
    data = {"train": (splits.train.float01(), splits.train.y), "test": (splits.test.float01(), splits.test.y)}
    archs = {(k[0], r["arch"], r["seed"]) for k, r in rows.items()}
    for arch_id, arch_s, seed in archs:
        arch = space.parse(arch_s)
        assert seed == _attack_seed(cfg["eval"]["seed"], f"init:{space.name}:{arch_s}") == arch_seed(cfg, space, arch)
        model = _fresh(space, arch, cfg, seed)
        for name in evaluations:
            s = get_evaluation(name).settings(cfg)
            for split in ("train", "test"):
                row_seed = _attack_seed(seed, name if split == "test" else f"{name}/{split}")
                assert row_seed == split_seed(seed, name, split)
                batches = _batches(*data[split], s.batches, s.batch_size)
                if name == "jacobian":
                    want = _jac(model, batches, s.n_projections, row_seed)
                    assert rows[(arch_id, name, "frobenius", f"{split}@init")]["value"] == want
                else:
                    g = torch.Generator().manual_seed(row_seed)
                    runs = [hessian_top_eigenvalue(model, *b, iterations=s.iterations, tol=s.tol, generator=g)
                            for b in batches]
                    assert rows[(arch_id, name, "top_eig", f"{split}@init")]["value"] == sum(r[0] for r in runs) / len(runs)
        for r in (r for k, r in rows.items() if k[0] == arch_id):
            assert r["checkpoint"] == "init" and r["space"] == space.name and r["dataset"] == "cifar10"
            assert r["version"] == 1 and r["settings_hash"] and r["device"] == "cpu" and r["device_seconds"] >= 0
    return len(archs)


def test_nb201_cells_at_initialisation(tmp_path, data_dir, capsys):
    cfg = load_preset("nb201-tiny")
    space = space_for(cfg)
    sel = "list:" + ",".join(NB201_CELLS)
    argv = ["proxies", "--preset", "nb201-tiny", "--archs", sel, "--out", str(tmp_path), "--device", "cpu"]
    assert main(argv) == 0
    rows = _rows(tmp_path)
    index = space.index()
    ids = {index.id_of(space.canonical(space.parse(c))) for c in NB201_CELLS}
    assert {k[0] for k in rows} == ids  # the classes' representatives
    assert {r["arch"] for r in rows.values()} == {space.format(index.arch_of(i)) for i in ids}
    assert len(rows) == len(ids) * (2 + 4)  # frobenius ×2 splits; top_eig, converged ×2 splits
    assert _check_against_direct_calls(rows, cfg, data_dir, ("jacobian", "hessian")) == len(ids)
    assert all(r["value"] > 0 for k, r in rows.items() if k[2] == "frobenius")
    capsys.readouterr()

    assert main(argv) == 0  # resumed: nothing left to compute, the rows unchanged
    assert "0 architecture(s) computed, 2 already in" in capsys.readouterr().out
    assert _rows(tmp_path) == rows
    # one more cell and one evaluation only: the new cell computed, the stored hessian rows kept
    more = sel + ",|skip_connect~0|+|nor_conv_3x3~0|none~1|+|none~0|nor_conv_3x3~1|nor_conv_1x1~2|"
    assert main([*argv[:4], more, *argv[5:], "--evaluations", "jacobian"]) == 0
    assert "1 architecture(s) computed, 2 already in" in capsys.readouterr().out
    after = _rows(tmp_path)
    assert {k: v for k, v in after.items() if k[0] in ids} == rows and len(after) == len(rows) + 2


def test_wrn_tiny_at_initialisation(tmp_path, data_dir):
    cfg = load_preset("tiny")
    argv = ["proxies", "--preset", "tiny", "--archs", "list:4-8-4-8-4-8", "--out", str(tmp_path), "--device", "cpu",
            "--evaluations", "jacobian", "--quiet"]
    assert main(argv) == 0
    rows = _rows(tmp_path)
    space = get_space("wrn")
    assert {k[0] for k in rows} == {space.index().id_of(space.parse("4-8-4-8-4-8"))} and len(rows) == 2
    assert _check_against_direct_calls(rows, cfg, data_dir, ("jacobian",)) == 1


def _micro_preset(tmp_path: Path, monkeypatch, name: str, base: str) -> None:
    """A copy of the params file with preset `name`: `base` with a Jacobian of one projection on 4 images per split
    (fast tests of the command's paths; the presets' own settings are tested above)."""
    from nares.config import params_path

    doc = yaml.safe_load(params_path().read_text())
    doc["presets"][name] = {"extends": base, "eval": {"jacobian": {"n_projections": 1, "batches": 1, "batch_size": 4}}}
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(doc))
    monkeypatch.setenv("NARES_PARAMS", str(params))


def test_another_space_than_the_presets(tmp_path, data_dir, monkeypatch):
    """`--space nb201` on a WRN preset: NB201 at its defaults (5 cells per stage) at the preset's width_base."""
    from factory.commands.proxies import preset_with_space

    _micro_preset(tmp_path, monkeypatch, "tiny-micro", "tiny")
    out = tmp_path / "out"
    argv = ["proxies", "--preset", "tiny-micro", "--space", "nb201", "--archs", f"list:{NB201_CELLS[1]}", "--out",
            str(out), "--device", "cpu", "--evaluations", "jacobian", "--quiet"]
    assert main(argv) == 0
    cfg = preset_with_space(load_preset("tiny-micro"), "nb201")
    assert cfg["space"] == {"name": "nb201"} and cfg["model"]["width_base"] == 1
    assert preset_with_space(load_preset("tiny-micro"), "wrn") == load_preset("tiny-micro")
    rows = _rows(out)
    assert {r["space"] for r in rows.values()} == {"nb201"} and len(rows) == 2
    assert _check_against_direct_calls(rows, cfg, data_dir, ("jacobian",)) == 1


def test_a_sampled_space_at_initialisation(tmp_path, data_dir, monkeypatch):
    """RobNet (too large to enumerate): `sample:N@SEED` names the architectures, its order their ids."""
    _micro_preset(tmp_path, monkeypatch, "robnet-micro", "robnet-tiny")
    out = tmp_path / "out"
    argv = ["proxies", "--preset", "robnet-micro", "--archs", "sample:2@5", "--out", str(out), "--device", "cpu",
            "--evaluations", "jacobian", "--quiet"]
    assert main(argv) == 0
    cfg = load_preset("robnet-micro")
    space = space_for(cfg)
    rows = _rows(out)
    assert {(k[0], r["arch"]) for k, r in rows.items()} == {(i + 1, space.format(a))
                                                            for i, a in enumerate(space.sample(2, 5))}
    assert _check_against_direct_calls(rows, cfg, data_dir, ("jacobian",)) == 2


@pytest.mark.parametrize("extra, needle", [
    (["--evaluations", "fsp"], "--evaluations: 'fsp' has no at-initialisation form (choose from jacobian, hessian)"),
    (["--evaluations", "nope"], "unknown evaluation 'nope'"),
    (["--space", "nope"], "unknown search space 'nope'"),
    (["--archs", "sample:x"], "bad sample 'x' in selection"),
])
def test_cli_errors_are_one_line(tmp_path, capsys, extra, needle):
    argv = ["proxies", "--preset", "tiny", "--archs", "list:4-8-4-8-4-8", "--out", str(tmp_path / "o"), *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nares: error: ") and needle in err[0]
    assert not (tmp_path / "o").exists()  # refused before any work


def test_cli_module_is_registered():
    assert importlib.util.find_spec("factory.commands.proxies") is not None
    from factory.cli import build_parser

    args = build_parser().parse_args(["proxies", "--archs", "all", "--out", "x"])
    assert args.preset == "full" and args.evaluations is None
