"""The `nares` flow's parameters are checked before any work: a bad action, mode, preset, space, data set, suite,
selection, seed list or version is one line naming the parameter, its value and what is allowed; nothing is
created under `$NARES_HOME`, no tables are written, Ray is not started. `nares sweep run` and `nares demo` refuse
the same values before any service starts (exit 2, one line on stderr)."""

from __future__ import annotations

import argparse
import re

import pytest

import nares.datasets
from factory.cli import main
from nares.config import REPO_ROOT
from nares.datasets.base import DataSet
from nares.sweep.request import WRN_RECORD_EVALUATIONS, resolve_request
from nares.sweep.selection import SweepError
from tests.flow_support import isolated_flow_env

DEAD_CONV = "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"


class OtherData(DataSet):
    """A registered data set no preset trains on."""

    name = "other10"
    num_classes = 10
    image_shape = (3, 32, 32)

    def load(self, data_cfg, root=None, *, seed=0):
        raise AssertionError("never loaded: the request is refused first")


@pytest.fixture
def env(tmp_path, monkeypatch):
    (tmp_path / "params.yaml").write_text((REPO_ROOT / "params.yaml").read_text())
    monkeypatch.setitem(nares.datasets._DATASETS, OtherData.name, OtherData())
    yield from isolated_flow_env(tmp_path, monkeypatch, NARES_TABLES=tmp_path / "tables")


BAD = [
    (dict(action="train"), r"^parameter action='train': expected one of sweep, re-evaluate, publish$"),
    (dict(mode="fast"), r"^parameter mode='fast': expected one of train, dry-run$"),
    (dict(preset="huge"), r"^parameter preset='huge': .*huge"),
    # the registries list what this process has registered: the built-ins, and plug-ins of earlier tests
    (dict(space="darts"), r"^parameter space='darts': unknown search space; known: nb201, robnet(, [\w-]+)*, wrn$"),
    (dict(space="nb201", preset="robnet-tiny"),
     r"^parameter space='nb201': preset 'robnet-tiny' is for space 'robnet', not 'nb201', .*presets for 'nb201': "),
    (dict(dataset="imagenet"), r"^parameter dataset='imagenet': unknown data set; registered: cifar10(, [\w-]+)*, "
                               r"other10$"),
    (dict(space="nb201", dataset="other10"),
     r"^parameter dataset='other10': preset 'nb201-tiny' trains and evaluates on 'cifar10'; name a preset whose "),
    (dict(space="nb201", suite="nope"),
     r"^parameter suite='nope': unknown suite 'nope' \(the preset's suites: nares, .*\) \(preset 'nb201-tiny'\)$"),
    (dict(suite="wsr"), r"^parameter suite='wsr': a WRN sweep writes the published record, which needs "
                        r"fgsm, pgd, cw, aa, complexity; sweep with a suite that has them"),
    (dict(space="robnet"), r"^parameter archs='all': search space 'robnet' is too large to enumerate: select "
                           r"sample:N\[@SEED\]"),
    (dict(space="nb201", archs="list:|bogus~0|"), r"^parameter archs='list:\|bogus~0\|': bad architecture"),
    (dict(seeds=[-1]), r"^parameter seeds=\[-1\]: expected a non-empty list of non-negative integers, or null$"),
    (dict(action="publish", version="a/b"), r"^parameter version='a/b': "),
]


@pytest.mark.parametrize(("kw", "message"), BAD, ids=[next(iter(k)) + "-" + str(next(iter(k.values()))) for k, _ in BAD])
def test_bad_flow_parameters_are_one_line_before_any_work(env, kw, message):
    import ray

    from flows.nares_flow import nares

    with pytest.raises(SweepError, match=message) as err:
        nares.fn(**{"action": "sweep", "preset": "tiny", **kw})
    assert "\n" not in str(err.value)
    home = env / "home"
    assert not (home / "runs").exists() and not (env / "tables").exists() and not ray.is_initialized()


def test_reevaluate_all_checks_each_presets_suite_first(env):
    from flows.nares_flow import nares

    for run_set in ("tiny-seed0", "nb201-tiny-seed0"):
        (env / "home" / "runs" / run_set).mkdir(parents=True)
    with pytest.raises(SweepError, match=r"^parameter suite='nope': unknown suite 'nope' .*\(preset 'nb201-tiny'\)$"):
        nares.fn(action="re-evaluate", preset="all", suite="nope")
    with pytest.raises(SweepError, match=r"^parameter space='darts': unknown search space"):
        nares.fn(action="re-evaluate", preset="all", space="darts")
    assert sorted(p.name for p in (env / "home" / "runs").iterdir()) == ["nb201-tiny-seed0", "tiny-seed0"]
    assert all(not any(p.iterdir()) for p in (env / "home" / "runs").iterdir()) and not (env / "tables").exists()


def test_good_requests_resolve_the_preset_and_suite(env):
    r = resolve_request("sweep", "tiny", space="nb201", dataset="cifar10", suite="jung", archs=f"list:{DEAD_CONV}")
    assert (r.preset, r.space, r.dataset, r.suite) == ("nb201-tiny", "nb201", "cifar10", "jung")
    assert r.evaluations[0] == "confusion" and r.evaluations[-1] == "masking"
    from nares.evaluations import NARES_SUITE

    r = resolve_request("sweep", "tiny")  # the default demo's sweep: the evaluator's default suite, in its order
    assert (r.preset, r.space, r.suite, r.evaluations) == ("tiny", "wrn", "nares", NARES_SUITE)
    assert NARES_SUITE == ("clean", "fgsm", "pgd", "cw", "aa", "corruptions", "complexity")
    assert set(WRN_RECORD_EVALUATIONS) <= set(r.evaluations)
    r = resolve_request("re-evaluate", "tiny", suite="jung")  # re-evaluate adds any suite to WRN runs
    assert (r.preset, r.suite) == ("tiny", "jung")
    r = resolve_request("publish", "robnet-tiny", suite="wsr")  # publish archs=all: no completeness list needed
    assert (r.preset, r.space, r.evaluations) == ("robnet-tiny", "robnet", ("clean", "wsr"))


def test_cli_refuses_before_any_service(env, capsys):
    assert main(["sweep", "run", "--space", "nb201", "--suite", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nares: error: parameter suite='nope': unknown suite 'nope'")
    assert main(["sweep", "run", "--action", "re-evaluate", "--preset", "all", "--dataset", "imagenet"]) == 2
    assert re.fullmatch(r"nares: error: parameter dataset='imagenet': unknown data set; registered: cifar10"
                        r"(, [\w-]+)*, other10", capsys.readouterr().err.strip())
    assert main(["demo", "--space", "darts", "--down"]) == 2
    out = capsys.readouterr()
    assert re.fullmatch(r"nares: error: parameter space='darts': unknown search space; known: nb201, robnet"
                        r"(, [\w-]+)*, wrn", out.err.strip())
    assert "starting the embedded stack" not in out.out
    assert main(["demo", "--space", "robnet", "--archs", "all", "--down"]) == 2
    assert capsys.readouterr().err.startswith("nares: error: parameter archs='all': search space 'robnet' is too large")
    assert not (env / "home").exists() or not any((env / "home").iterdir())


def test_the_demo_plans_each_space_before_any_service(env, monkeypatch):
    """The per-space demos' plans resolve (a RobNet sample, never `all`), and a suite that reads no CIFAR-10-C
    generates no set."""
    from factory.commands.demo import _corruption_set, _plan, register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    for space, suite in (("robnet", "wsr"), ("nb201", "wsr"), ("robnet", None)):
        args = parser.parse_args(["demo", "--space", space, *(["--suite", suite] if suite else [])])
        sweep, release, commands = _plan(args, "v1")
        assert sweep["space"] == space and release["version"] == "v1" and commands[0][0] == "query"
        if suite == "wsr":
            _corruption_set(sweep)
            assert not (env / "home" / "data").exists()
