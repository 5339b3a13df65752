"""NAS on long-table releases (hand-made, planted objectives): a release of a few NB201 classes is searched over the
cells it answers only (neighbours and mutations restricted, budget capped), every algorithm finds the subset's
planted optimum when the budget covers the subset and never queries an unanswered cell; a release answering every
class searches the whole space; a RobNet sample is searched as it is; `nares nas run` says so and records it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from factory.cli import main
from nares.api.dataset import open_folder
from nares.config import load_preset
from nares.errors import NaresError
from nares.nas.algorithms import ALGORITHMS, run_one
from nares.nas.runner import run_many, search_problem, settings_for
from nares.nas.subspace import AnsweredSpace
from nares.results.build import LongBuilder
from nares.results.schema import TRAIN
from nares.results.store import write_results
from nares.space_table import space_table, write_table
from nares.spaces import space_for
from nares.spaces.base import SpaceIndex

SKIP = "|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"
RESNET = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"
POOL = "|avg_pool_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"
ALL_CONV = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
CONV1 = "|nor_conv_1x1~0|+|nor_conv_1x1~0|none~1|+|nor_conv_1x1~0|skip_connect~1|none~2|"
NAS = load_preset("full")["nas"]


def _train_rows(b: LongBuilder, space, aid: int, arch, val_pgd: float, dataset: str = "cifar10") -> None:
    """Two epochs of history (best epoch 1 = `val_pgd`), the training summary, clean and PGD test accuracy."""
    base = {"dataset": dataset, "space": space.name, "arch_id": aid, "arch": space.format(arch), "seed": 0}
    for metric, vals in (("pgd", [val_pgd - 5.0, val_pgd]), ("val_acc", [40.0, val_pgd + 20.0]),
                         ("cw", [10.0, val_pgd - 1.0])):
        b.add(2, vals, evaluation=TRAIN, metric=metric, key=["0", "1"], checkpoint="", **base)
    b.add(2, [1.0, 0.001], evaluation=TRAIN, metric=["best_epoch", "training_time"], key="", checkpoint="", **base)
    b.add(1, [val_pgd + 18.0], evaluation="clean", metric="acc", key="", checkpoint="best", **base)
    b.add(1, [val_pgd - 2.0], evaluation="pgd", metric="acc", key="", checkpoint="best", **base)


def _release(folder, preset: str, space, index, planted: dict, version: str):
    b = LongBuilder()
    for arch, v in planted.items():
        _train_rows(b, space, index.id_of(arch), arch, v)
    write_results(b.table(), folder / "tables")
    write_table(space_table(index, load_preset(preset)["model"]["width_base"], space), folder / "architectures.parquet")
    (folder / "RELEASE.json").write_text(json.dumps({"version": version, "space": space.name, "preset": preset}))
    return open_folder(folder)


@pytest.fixture(scope="module")
def nb201_partial(tmp_path_factory):
    space = space_for(load_preset("nb201-tiny"))
    reps = [space.canonical(space.parse(s)) for s in (SKIP, RESNET, POOL, ALL_CONV, CONV1)]
    planted = dict(zip(reps, [12.0, 31.5, 20.25, 27.0, 18.0], strict=True))  # the optimum: RESNET's class
    ds = _release(tmp_path_factory.mktemp("nb1"), "nb201-tiny", space, space.index(), planted, "nbp")
    return ds, space, planted


def test_every_algorithm_finds_the_subsets_optimum_querying_only_answered_cells(nb201_partial):
    ds, space, planted = nb201_partial
    problem = search_problem(ds, "VAL_PGD_ACC")
    members = [a for a in space.enumerate() if space.canonical(a) in planted]
    assert problem.restricted and isinstance(problem.space, AnsweredSpace)
    assert (problem.searched, problem.of) == (len(members), 15_625) and len(members) > len(planted)
    assert set(problem.space.enumerate()) == set(members)
    assert problem.values.tolist() == [planted[space.canonical(a)] for a in problem.space.enumerate()]
    assert problem.budget(500) == len(members) and problem.budget(3) == 3
    # neighbours stay in the answered set (as representatives, never the cell itself)
    table = problem.space.neighbour_table()
    for code, row in enumerate(table):
        arch = problem.space.arch_of_code(code)
        expected = {space.canonical(n) for n in space.neighbours(arch)} & set(planted) - {arch}
        assert {problem.space.arch_of_code(int(c)) for c in row} == expected
    assert any(len(r) == 0 for r in table) and any(len(r) > 0 for r in table)  # uneven, some empty
    answered = set(members)
    best = max(planted.values())
    for name in ALGORITHMS:
        for seed in (0, 1, 2):
            o = run_one(name, problem.values, problem.searched, seed, settings_for(name, NAS), problem.space)
            queried = {problem.space.arch_of_code(c) for c in o.seen}
            assert queried <= answered and len(o.seen) == len(o.trajectory) == problem.searched, name
            best_arch = problem.space.arch_of_code(o.best_code)
            assert (o.trajectory[-1], space.canonical(best_arch)) == (best, space.canonical(space.parse(RESNET))), name
            assert not np.isnan(ds.objective_values("VAL_PGD_ACC")[ds.id_of(best_arch) - 1])
    # a smaller budget still queries answered cells only, exactly the budget
    for name in ALGORITHMS:
        o = run_one(name, problem.values, 7, 3, settings_for(name, NAS), problem.space)
        assert len(o.seen) == 7 and {problem.space.arch_of_code(c) for c in o.seen} <= answered
    with pytest.raises(NaresError, match="published variant reproduces the official WRN optimizers"):
        run_many("random_search", problem.values, runs=1, budget=3, variant="published", space=problem.space)


def test_nas_run_cli_restricts_says_so_and_records_it(nb201_partial, capsys):
    ds, _, planted = nb201_partial
    n = search_problem(ds, "VAL_PGD_ACC").searched
    assert main(["nas", "run", "--runs", "2", "--budget", "500", "--workers", "1", "--data", str(ds.folder),
                 "--json"]) == 0
    out = capsys.readouterr()
    report = json.loads(out.out)
    note = out.err.strip().splitlines()
    assert note == [f"nas: {ds.folder} answers {n:,} of 15,625 architectures of space 'nb201': searching those {n:,} "
                    f"only (neighbours and mutations restricted to them), budget {n:,} (capped from 500)"]
    assert report["searched"] == {"archs": n, "of": 15_625, "restricted": True, "budget_asked": 500}
    assert report["budget"] == n and report["space"] == "nb201"
    assert [r["algorithm"] for r in report["rows"]] == list(ALGORITHMS)
    assert all(r["found_optimum"] == 1.0 and r["queries"]["max"] == n for r in report["rows"])
    assert set(report["optimum"]) == {"VAL_CLEAN_ACC", "VAL_PGD_ACC", "TEST_CLEAN_ACC", "TEST_PGD_ACC"}  # no CW/AA
    assert report["optimum"]["VAL_PGD_ACC"] == max(planted.values())
    assert all(r["metrics"]["TEST_PGD_ACC"]["mean"] == max(planted.values()) - 2.0 for r in report["rows"])
    assert main(["nas", "run", "--algo", "bananas", "--runs", "1", "--budget", "4", "--workers", "1", "--data",
                 str(ds.folder)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"nas: {ds.folder} answers {n:,} of 15,625") and lines[0].endswith("budget 4")
    assert lines[1].startswith("NAS benchmark: objective VAL_PGD_ACC (maximised), budget 4 queries, 1 runs")
    assert lines[2].split() == ["algorithm", "VAL_CLEAN_ACC", "VAL_PGD_ACC", "TEST_CLEAN_ACC", "TEST_PGD_ACC",
                                "found", "opt.", "queries", "seconds"]


def test_a_release_answering_every_class_searches_the_whole_space(tmp_path):
    space = space_for(load_preset("nb201-tiny"))
    index = space.index()
    reps = sorted({space.canonical(a) for a in space.enumerate()}, key=index.id_of)
    rng = np.random.default_rng(0)
    planted = dict(zip(reps, rng.uniform(10.0, 40.0, len(reps)).round(4).tolist(), strict=True))
    ds = _release(tmp_path, "nb201-tiny", space, index, planted, "nbfull")
    problem = search_problem(ds, "VAL_PGD_ACC")
    assert not problem.restricted and problem.space is ds.space and (problem.searched, problem.of) == (15_625, 15_625)
    assert problem.note(500) == "" and problem.budget(20_000) == 20_000
    assert all(problem.values[space.code_of(a)] == planted[space.canonical(a)] for a in list(space.enumerate())[::97])


def test_a_robnet_sample_is_searched_as_it_is(tmp_path):
    space = space_for(load_preset("robnet-tiny"))
    sample = space.sample(6, 3)
    index = SpaceIndex(space, sample)
    planted = {a: 10.0 + i for i, a in enumerate(sample)}  # the optimum: the last drawn
    ds = _release(tmp_path, "robnet-tiny", space, index, planted, "rbp")
    problem = search_problem(ds, "VAL_PGD_ACC")
    assert problem.restricted and (problem.searched, problem.of) == (6, 6)
    for name in ALGORITHMS:
        o = run_one(name, problem.values, 6, 0, settings_for(name, NAS), problem.space)
        assert len(o.seen) == 6 and problem.space.arch_of_code(o.best_code) == sample[-1], name
