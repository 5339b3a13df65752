"""Presets: `full` is the protocol; other presets inherit and override; bad input fails in one line."""

from __future__ import annotations

import pytest

from nares.config import REPO_ROOT, load_preset, preset_hash
from nares.errors import ConfigError


def test_full_preset_is_the_protocol() -> None:
    c = load_preset("full")
    t = c["train"]
    assert (t["epochs"], t["batch_size"], t["lr"], t["momentum"], t["weight_decay"], t["grad_clip_norm"]) == (100, 128, 0.1, 0.9, 5e-4, 5.0)
    assert t["lr_milestones"] == [75, 90] and t["lr_gamma"] == 0.1
    assert t["attack"] == {"eps_255": 8, "step_255": 2, "steps": 7, "init": "gaussian", "init_scale_255": 2}
    assert c["checkpoints"]["save_epochs"] == [74, 89]
    e = c["eval"]
    assert (e["pgd"]["steps"], e["pgd"]["step_255"], e["cw"]["steps"]) == (20, 0.8, 40)
    assert e["aa"]["apgd_ce"]["n_iter"] == 100 and e["aa"]["apgd_t"]["n_target_classes"] == 9
    assert c["model"]["width_base"] == 16 and c["nas"]["budget"] == 500


def test_tiny_inherits_and_overrides() -> None:
    full, tiny = load_preset("full"), load_preset("tiny")
    assert tiny["model"]["width_base"] < full["model"]["width_base"]
    assert tiny["train"]["lr"] == full["train"]["lr"] and tiny["train"]["epochs"] < full["train"]["epochs"]
    assert max(tiny["checkpoints"]["save_epochs"]) < tiny["train"]["epochs"]
    assert preset_hash(tiny) != preset_hash(full) and preset_hash(full) == preset_hash(load_preset("full"))


def test_bad_presets(tmp_path) -> None:
    with pytest.raises(ConfigError, match="preset 'huge' is not in"):
        load_preset("huge")
    p = tmp_path / "params.yaml"
    p.write_text((REPO_ROOT / "params.yaml").read_text() + "  bad: {train: {lrr: 1}}\n")
    with pytest.raises(ConfigError, match=r"presets\.bad\.train\.lrr is not a key"):
        load_preset("bad", p)
    with pytest.raises(ConfigError, match="does not exist"):
        load_preset("full", tmp_path / "nope.yaml")


# Today's hashes of the shipped presets: typed validation must leave the resolved values byte-identical (the
# preset hash moved when the neighbouring datasets' evaluations joined `eval`, again when AutoAttack, RobNets'
# attacks, FSP and the corruption confusion cells did; training and evaluation hashes did not).
PINNED = {
    "full": ("124fbac9b9b5248b", "a69a4d07d9e0c5fc", "fcde46f4c12a8c8e", "8d6a908f0278b45b"),
    "tiny": ("6b8de40f1e4f4e33", "15fa30acde803f90", "5ffc37cb3c6cf65b", "71c3eb61c3253d61"),
}


@pytest.mark.parametrize("name", sorted(PINNED))
def test_preset_hashes_are_pinned(name: str) -> None:
    from nares.train.runtime import evaluation_hash, training_hash

    cfg = load_preset(name)
    assert (preset_hash(cfg), training_hash(cfg), evaluation_hash(cfg, "pgd"), evaluation_hash(cfg, "complexity")) \
        == PINNED[name]


def test_a_preset_extends_another_and_names_its_space() -> None:
    tiny, nb = load_preset("tiny"), load_preset("nb201-tiny")
    assert nb["space"] == {"name": "nb201", "cells_per_stage": 1} and nb["model"]["width_base"] == 4
    assert {k: v for k, v in nb.items() if k not in ("space", "model", "name")} == \
        {k: v for k, v in tiny.items() if k not in ("space", "model", "name")}  # everything else is tiny's
    full_nb = load_preset("nb201-full")
    assert full_nb["train"] == load_preset("full")["train"] and full_nb["model"]["width_base"] == 16


def test_bad_extends(tmp_path) -> None:
    p = tmp_path / "params.yaml"
    base = (REPO_ROOT / "params.yaml").read_text()
    for extra, message in (
        ("  a: {extends: nope}\n", r"presets\.a\.extends is 'nope'; expected the name of another preset"),
        ("  a: {extends: b}\n  b: {extends: a}\n", r"presets\.b\.extends is 'a', which extends it back"),
        ("  a: {extends: b}\n  b: [1]\n", r"presets\.b is \[1\]; expected a mapping"),
        ("  a: {extends: tiny, train: {epochs: ten}}\n", r"presets\.a\.train\.epochs"),
    ):
        p.write_text(base + extra)
        with pytest.raises(ConfigError, match=message):
            load_preset("a", p)


def test_a_non_wrn_space_section_is_part_of_the_training_and_evaluation_hashes() -> None:
    import copy

    from nares.train.runtime import evaluation_hash, training_hash

    nb = load_preset("nb201-tiny")
    more = copy.deepcopy(nb)
    more["space"]["cells_per_stage"] = 2
    assert training_hash(more) != training_hash(nb) and evaluation_hash(more, "pgd") != evaluation_hash(nb, "pgd")
    wrn = load_preset("tiny")
    sub = copy.deepcopy(wrn)
    sub["space"] = {"depths": [4, 5], "widths": [8]}  # a WRN restriction leaves each architecture's run as it is
    assert training_hash(sub) == training_hash(wrn)


def test_the_preset_of_a_search_space() -> None:
    from nares.config import preset_for_space

    assert preset_for_space("tiny", None) == "tiny" and preset_for_space("tiny", "wrn") == "tiny"
    assert preset_for_space("tiny", "nb201") == "nb201-tiny" and preset_for_space("full", "robnet") == "robnet-full"
    assert preset_for_space("nb201-tiny", "nb201") == "nb201-tiny"
    with pytest.raises(ConfigError, match=r"preset 'nb201-tiny' is for space 'nb201', not 'robnet', and there is no "
                                          r"preset 'robnet-nb201-tiny'; presets for 'robnet': robnet-full, robnet-tiny"):
        preset_for_space("nb201-tiny", "robnet")


def test_a_preset_defines_its_own_suites_and_nothing_else_new(tmp_path) -> None:
    import yaml

    doc = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    doc["presets"]["mine"] = {"extends": "tiny", "eval": {"suites": {"quick": ["clean", "pgd"]}, "suite": "quick"}}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(doc))
    cfg = load_preset("mine", path)
    assert cfg["eval"]["suites"]["quick"] == ["clean", "pgd"] and cfg["eval"]["suite"] == "quick"
    assert cfg["eval"]["suites"]["jung"] == load_preset("full")["eval"]["suites"]["jung"]  # the others inherited
    for bad, line in ((["clean", "pgd_typo"], "presets.mine.eval.suites.quick is ['clean', 'pgd_typo']; expected "
                                               "distinct evaluation names"),
                      ({"pdg": {"steps": 3}}, "presets.mine.eval.pdg is not a setting")):
        doc["presets"]["mine"]["eval"] = {"suites": {"quick": bad}} if isinstance(bad, list) else bad
        path.write_text(yaml.safe_dump(doc))
        with pytest.raises(ConfigError, match=line.replace("[", r"\[").replace("]", r"\]")):
            load_preset("mine", path)
    doc["presets"]["mine"] = {"train": {"epochz": 3}}  # outside `eval`, a key `full` lacks is still refused
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match="presets.mine.train.epochz is not a key of the `full` preset"):
        load_preset("mine", path)
