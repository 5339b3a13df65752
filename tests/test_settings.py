"""Typed presets (nares.settings) and environment (nares.environment): every bad value is one line naming its key."""

from __future__ import annotations

import copy
import dataclasses
import typing

import pytest
import yaml

from factory.cli import main
from nares.config import REPO_ROOT, load_preset, load_settings, preset_hash, preset_names
from nares.environment import Environment, environment
from nares.errors import ConfigError
from nares.settings import Settings

PARAMS = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())


def params_with(path, preset: str, dotted: str, value, *, delete: bool = False):
    """A copy of the repository's params.yaml with `presets.<preset>.<dotted>` set to `value` (or deleted)."""
    doc = copy.deepcopy(PARAMS)
    node = doc["presets"].setdefault(preset, {})
    *parents, leaf = dotted.split(".")
    for k in parents:
        node = node.setdefault(k, {})
    if delete:
        del node[leaf]
    else:
        node[leaf] = value
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


# (preset, key, value, what the message must say after "<file>: ")
BAD_VALUES = [
    ("tiny", "train.epochs", "ten", "presets.tiny.train.epochs is 'ten'; expected an integer >= 1"),
    ("tiny", "train.epochs", 5.5, "presets.tiny.train.epochs is 5.5; expected an integer >= 1"),
    ("tiny", "train.epochs", -1, "presets.tiny.train.epochs is -1; expected an integer >= 1"),
    ("tiny", "train.epochs", 0, "presets.tiny.train.epochs is 0; expected an integer >= 1"),
    ("tiny", "train.epochs", True, "presets.tiny.train.epochs is True; expected an integer >= 1"),
    ("tiny", "train.lr", "0.1x", "presets.tiny.train.lr is '0.1x'; expected a number > 0"),
    ("tiny", "train.lr", -0.1, "presets.tiny.train.lr is -0.1; expected a number > 0"),
    ("tiny", "train.lr", float("nan"), "presets.tiny.train.lr is nan; expected a number > 0"),
    ("full", "train.weight_decay", "5e-4", "presets.full.train.weight_decay is '5e-4'; expected a number >= 0 "
                                           "(YAML reads it as text"),
    ("tiny", "train.batch_size", "big", "presets.tiny.train.batch_size is 'big'; expected an integer >= 1"),
    ("tiny", "train.lr_milestones", "3,4", "presets.tiny.train.lr_milestones is '3,4'; expected a list, each an "
                                           "integer >= 1, strictly increasing"),
    ("tiny", "train.lr_milestones", [4, 3], "presets.tiny.train.lr_milestones is [4, 3]; expected a list"),
    ("tiny", "train.lr_milestones", [3, 7], "presets.tiny.train.lr_milestones is [3, 7]; expected epochs below "
                                            "train.epochs (5)"),
    ("tiny", "train.seed", "zero", "presets.tiny.train.seed is 'zero'; expected an integer in [0, "),
    ("tiny", "train.deterministic", "yes", "presets.tiny.train.deterministic is 'yes'; expected true or false"),
    ("tiny", "train.precision", "fp8", "presets.tiny.train.precision is 'fp8'; expected one of fp32, bf16, fp16"),
    ("tiny", "train.momentum", 1.5, "presets.tiny.train.momentum is 1.5; expected a number in [0, 1)"),
    ("tiny", "train.attack.init", "normal", "presets.tiny.train.attack.init is 'normal'; expected one of gaussian, "
                                            "uniform"),
    ("tiny", "train.attack", 3, "presets.tiny.train.attack is 3; expected a mapping with the keys eps_255, "),
    ("tiny", "model.width_base", 0, "presets.tiny.model.width_base is 0; expected an integer >= 1"),
    ("tiny", "data.train", "imagenet", "presets.tiny.data.train is 'imagenet'; expected one of cifar10, "
                                       "cifar10-subset"),
    ("tiny", "data.train_limit", -5, "presets.tiny.data.train_limit is -5; expected null or an integer >= 1"),
    ("tiny", "data.val_holdout", 2000, "presets.tiny.data.val_holdout is 2000; expected fewer than data.train_limit"),
    ("tiny", "train.batch_size", 4000, "presets.tiny.train.batch_size is 4000; expected at most the 1800 training "),
    ("tiny", "checkpoints.save_epochs", [2, 9], "presets.tiny.checkpoints.save_epochs is [2, 9]; expected two "
                                                "epochs in 0..4"),
    ("tiny", "checkpoints.save_epochs", [2], "presets.tiny.checkpoints.save_epochs is [2]; expected a list of 2 "),
    ("tiny", "eval.aa.apgd_t.n_target_classes", 10, "presets.tiny.eval.aa.apgd_t.n_target_classes is 10; expected "
                                                    "at most model.num_classes - 1 (9)"),
    ("tiny", "eval.corruption_severities", [0, 1], "presets.tiny.eval.corruption_severities is [0, 1]; expected a "
                                                   "list of at least one item, each an integer in [1, 5]"),
    ("tiny", "eval.pgd.init", "gaussian", "presets.tiny.eval.pgd.init is 'gaussian'; expected one of uniform"),
    ("tiny", "sweep.order", "random", "presets.tiny.sweep.order is 'random'; expected one of largest_first, "),
    ("tiny", "sweep.reevaluate_checkpoints", [], "presets.tiny.sweep.reevaluate_checkpoints is []; expected a list "
                                                 "of at least one item, each one of e74, e89, last, best"),
    ("tiny", "nas.objective", "TEST_PGD_ACC", "presets.tiny.nas.objective is 'TEST_PGD_ACC'; expected one of MACS, "),
    ("tiny", "train.lrr", 1, "presets.tiny.train.lrr is not a key of the `full` preset"),
    ("full", "train.lrr", 1, "presets.full.train.lrr is not a setting (the keys of presets.full.train are epochs, "),
    # a bad value of `full` is named where it is written, also when another preset inherits it
    ("full", "train.epochs", "ten", "presets.full.train.epochs is 'ten'; expected an integer >= 1"),
    ("full", "model.width_base", 0, "presets.full.model.width_base is 0; expected an integer >= 1"),
]


@pytest.mark.parametrize(("preset", "key", "value", "message"), BAD_VALUES, ids=[f"{p}.{k}={v!r}" for p, k, v, _ in BAD_VALUES])
def test_bad_value_is_one_line_naming_key_value_and_allowed(tmp_path, preset, key, value, message) -> None:
    path = params_with(tmp_path / "params.yaml", preset, key, value)
    for name in {preset, "tiny"}:
        with pytest.raises(ConfigError) as e:
            load_preset(name, path)
        assert str(e.value).startswith(f"{path}: {message}"), str(e.value)
        assert "\n" not in str(e.value)


def _leaf_keys(node: dict, prefix: str = "") -> list[str]:
    out = []
    for k, v in node.items():
        out += _leaf_keys(v, f"{prefix}{k}.") if isinstance(v, dict) else [f"{prefix}{k}"]
    return out


FULL_KEYS = [k for k in _leaf_keys(PARAMS["presets"]["full"]) if not k.startswith("eval.suites.")]  # suites: optional


@pytest.mark.parametrize("key", FULL_KEYS)
def test_every_key_of_full_is_required(tmp_path, key) -> None:
    path = params_with(tmp_path / "params.yaml", "full", key, None, delete=True)
    with pytest.raises(ConfigError, match=rf"^{path}: presets\.full\.{key.replace('.', '[.]')} is missing; expected "):
        load_preset("tiny", path)


def test_schema_covers_every_key_of_full_with_its_type() -> None:
    """`full` has no key outside the schema (unknown keys are refused) and `momentum`/`grad_clip_norm` are in it."""
    assert len(FULL_KEYS) > 90 and {"train.momentum", "train.grad_clip_norm"} <= set(FULL_KEYS)
    s = load_settings("full")
    assert s.train.momentum == 0.9 and s.train.grad_clip_norm == 5.0 and s.train.lr_milestones == (75, 90)


@pytest.mark.parametrize(("text", "message"), [
    ("presets: [1, 2]\n", "presets is [1, 2]; expected a mapping of preset names to presets"),
    ("presets:\n  tiny: {}\n", "presets.full is missing; every preset inherits from it"),
    ("other: 1\n", "it has no `presets` key; expected a mapping"),
    ("[1, 2]\n", "it has no `presets` key; expected a mapping"),
    ("", "it has no `presets` key; expected a mapping"),
    ("presets: {full: [\n", "is not valid YAML at line 2"),
])
def test_malformed_params_files(tmp_path, text, message) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_preset("full", path)


def test_preset_body_must_be_a_mapping(tmp_path) -> None:
    path = params_with(tmp_path / "params.yaml", "full", "model", PARAMS["presets"]["full"]["model"])
    doc = yaml.safe_load(path.read_text())
    doc["presets"]["tiny"] = [1, 2]
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match=r"presets\.tiny is \[1, 2\]; expected a mapping of the keys it changes"):
        load_preset("tiny", path)


@pytest.mark.parametrize("blob", [b"\x89PNG\r\n\x1a\n\x00\xff\xfe binary", b"\x00\x01\x02\x03 nul bytes"])
def test_binary_params_file(tmp_path, blob) -> None:
    path = tmp_path / "params.yaml"
    path.write_bytes(blob)
    with pytest.raises(ConfigError, match=rf"params file {path} is not (UTF-8 text|valid YAML)"):
        load_preset("full", path)


def test_params_file_that_is_a_directory(tmp_path) -> None:
    with pytest.raises(ConfigError, match="is a directory; expected a YAML file"):
        load_preset("full", tmp_path)


@pytest.mark.parametrize(("value", "message"), [
    ("", "environment variable NARES_PARAMS is set but empty; unset it or give it a path"),
    ("   ", "environment variable NARES_PARAMS is set but empty"),
    ("DIR", "environment variable NARES_PARAMS names a directory (.*); expected a params file"),
    ("DIR/missing.yaml", "params file .*missing.yaml does not exist"),
])
def test_bad_nares_params(tmp_path, monkeypatch, value, message) -> None:
    monkeypatch.setenv("NARES_PARAMS", value.replace("DIR", str(tmp_path)))
    with pytest.raises(ConfigError, match=message):
        load_preset("tiny")


def test_shipped_presets_are_valid_and_unchanged_by_validation() -> None:
    """The dict is the file's values, merged (ints stay ints, lists stay lists): hashes do not move."""
    raw = PARAMS["presets"]
    assert {k: v for k, v in load_preset("full").items() if k != "name"} == raw["full"]
    tiny = load_preset("tiny")
    assert tiny["train"]["epochs"] == 5 and tiny["train"]["lr"] == raw["full"]["train"]["lr"]
    assert type(tiny["train"]["attack"]["eps_255"]) is int and type(tiny["train"]["lr_milestones"]) is list
    assert preset_names() == list(raw)
    for name in preset_names():
        assert preset_hash(load_preset(name)) == preset_hash(load_preset(name))


def test_typed_settings() -> None:
    s = load_settings("tiny")
    assert isinstance(s, Settings) and s.name == "tiny"
    assert (s.train.epochs, s.train.lr_milestones, s.checkpoints.save_epochs) == (5, (3, 4), (2, 3))
    assert s.train.attack.eps_255 == 8.0 and type(s.train.attack.eps_255) is float   # a float field is a float
    assert s.data.train_limit == 2000 and s.data.val == "holdout" and s.eval.metric_versions.pgd == 1
    assert s.model.width_base == 1 and s.sweep.max_actors is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.train.epochs = 6  # type: ignore[misc]


def test_schema_choices_match_the_code_that_uses_them() -> None:
    """The enumerations of the schema are the values the trainer, data loader, sweep and NAS code accept."""
    from nares.api.metrics import Metric
    from nares.attacks.common import PRECISIONS
    from nares.constants import CHECKPOINT_KINDS
    from nares.data.splits import TEST_SOURCES, TRAIN_SOURCES, VAL_SOURCES
    from nares.evaluations import NARES_SUITE as METRICS
    from nares.settings import (
        CheckpointKind,
        MetricVersions,
        Precision,
        SearchObjective,
        SweepOrder,
        TrainSource,
        ValSource,
    )
    from nares.sweep.selection import ORDERS

    args = typing.get_args
    assert set(args(Precision)) == set(PRECISIONS)
    assert args(TrainSource) == TRAIN_SOURCES == TEST_SOURCES and args(ValSource) == VAL_SOURCES
    assert args(SweepOrder) == ORDERS and args(CheckpointKind) == CHECKPOINT_KINDS
    assert tuple(f.name for f in dataclasses.fields(MetricVersions)) == METRICS
    assert set(args(SearchObjective)) == {m.value for m in Metric if not m.value.startswith("TEST_")}


# --- through the CLI: exit 2, one line on stderr, nothing read or created -------------------------------------

@pytest.mark.parametrize(("key", "value", "named"), [
    ("train.epochs", "ten", "presets.tiny.train.epochs is 'ten'"),
    ("train.lr", -0.1, "presets.tiny.train.lr is -0.1"),
    ("train.lr_milestones", "3,4", "presets.tiny.train.lr_milestones is '3,4'"),
    ("model.width_base", 0, "presets.tiny.model.width_base is 0"),
    ("train.deterministic", "yes", "presets.tiny.train.deterministic is 'yes'"),
])
def test_cli_train_refuses_bad_preset_before_any_work(tmp_path, monkeypatch, capsys, key, value, named) -> None:
    path = params_with(tmp_path / "params.yaml", "tiny", key, value)
    monkeypatch.setenv("NARES_PARAMS", str(path))
    monkeypatch.setenv("NARES_DATA_DIR", str(tmp_path / "no-data"))   # any data read would fail differently
    out = tmp_path / "run"
    assert main(["train", "4-8-4-8-4-8", "--preset", "tiny", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"nares: error: {path}: {named}; expected ") and err.count("\n") == 1, err
    assert not out.exists() and not (tmp_path / "no-data").exists()


@pytest.mark.parametrize("value", ["", "DIR"])
def test_cli_train_refuses_bad_nares_params(tmp_path, monkeypatch, capsys, value) -> None:
    monkeypatch.setenv("NARES_PARAMS", value.replace("DIR", str(tmp_path)))
    out = tmp_path / "run"
    assert main(["train", "4-8-4-8-4-8", "--preset", "tiny", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nares: error: environment variable NARES_PARAMS ") and err.count("\n") == 1
    assert not out.exists()


# --- the environment ---------------------------------------------------------------------------------------

def test_environment_defaults_and_values(tmp_path) -> None:
    from nares.store.settings import StoreSettings

    home = tmp_path / "home"
    d = Environment.from_env({})
    assert d.home == REPO_ROOT / "var" and d.params == REPO_ROOT / "params.yaml" and not d.params_set
    assert (d.ports().s3, d.ports().prefect, d.ports().ray) == (9444, 4200, 6380) and d.tables is None
    e = Environment.from_env({"NARES_HOME": str(home), "NARES_DATA_DIR": "~/data", "NARES_CACHE_DIR": str(tmp_path),
                              "NARES_S3_PORT": "9555", "NARES_RAY_PORT": " 7000 ", "NARES_PARAMS": "p.yaml",
                              "AWS_SECRET_ACCESS_KEY": "s3cr3t-value", "AWS_ACCESS_KEY_ID": "AKIA-test"})
    assert e.home == home and str(e.data_dir).endswith("/data") and "~" not in str(e.data_dir)
    assert (e.ports().s3, e.ports().ray, e.params_set) == (9555, 7000, True)
    assert e.store_settings() == StoreSettings.from_env({"NARES_S3_PORT": "9555", "AWS_SECRET_ACCESS_KEY": "s3cr3t-value",
                                                         "AWS_ACCESS_KEY_ID": "AKIA-test"})
    assert e.store_settings().endpoint_url == "http://127.0.0.1:9555"
    assert "s3cr3t" not in repr(e) and "AKIA" not in repr(e)


def test_readers_go_through_the_environment(tmp_path, monkeypatch) -> None:
    from nares.api.cache import cache_root
    from nares.data.paths import data_root

    monkeypatch.setenv("NARES_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("NARES_CACHE_DIR", str(tmp_path / "c"))
    assert (data_root(), cache_root(), environment().data_dir) == (tmp_path / "d", tmp_path / "c", tmp_path / "d")
    monkeypatch.setenv("NARES_CACHE_DIR", "")
    with pytest.raises(ConfigError, match="^environment variable NARES_CACHE_DIR is set but empty"):
        cache_root()


@pytest.mark.parametrize("var", ["NARES_S3_PORT", "NARES_PREFECT_PORT", "NARES_RAY_PORT"])
@pytest.mark.parametrize("value", ["abc", "0", "70000", "-1", "94.4", "\uff19\uff14\uff14\uff14", ""])
def test_bad_port_names_the_variable(var, value) -> None:
    with pytest.raises(ConfigError, match=rf"^environment variable {var} is '.*'; expected a port, an integer in "
                                          r"1\.\.65535$"):
        Environment.from_env({var: value}).ports()


@pytest.mark.parametrize("var", ["NARES_HOME", "NARES_DATA_DIR", "NARES_TABLES", "NARES_RELEASES"])
def test_empty_path_variable_is_refused(var) -> None:
    with pytest.raises(ConfigError, match=rf"^environment variable {var} is set but empty"):
        Environment.from_env({var: ""})
