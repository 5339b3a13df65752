"""The sweep deployment's flow over the neighbouring search spaces (real Prefect, Ray, trainer and S3 server),
through its parameters `space`, `dataset` and `suite`: NB201 trains only class representatives and evaluates
exactly the `jung` suite, RobNet a seeded sample under `nares`; each run lands in the object store, the ledger, the
manifest and the long results table under its space, and a second run trains nothing. RobNet's runs are then
re-evaluated with another suite (only its cells, under the sweep's ids, without re-drawing the sample). Each ends
in a validated release naming its space, data set and suite, which `nares query` and `nares nas run` read."""

from __future__ import annotations

import json
import uuid

import pyarrow.compute as pc
import pytest
import yaml

from nares.config import REPO_ROOT
from nares.constants import CHECKPOINT_KINDS
from tests.flow_support import isolated_flow_env
from tests.s3_fixtures import s3_server  # noqa: F401 - fixture

pytestmark = [pytest.mark.services, pytest.mark.slow]

DEAD_CONV = "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"  # ≅ SKIP (node 1 feeds nothing)
SKIP = "|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"
RESNET = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"


def micro_params(path) -> None:
    """`tiny` shrunk to 2 epochs of 2 batches with weak attacks; nb201-tiny and robnet-tiny extend it."""
    p = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    t = p["presets"]["tiny"]
    t["data"].update(train_limit=128, val_holdout=64, test_limit=64, corruption_limit=8)
    t["train"].update(batch_size=64, epochs=2, lr_milestones=[1])
    t["checkpoints"] = {"save_epochs": [0, 0]}
    atk = {"steps": 1, "step_255": 8, "eps_255": 8, "init": "uniform"}
    t["validation"] = {"batch_size": 64, "pgd": atk, "cw": {**atk, "kappa": 0}}
    ev = {"steps": 2, "step_255": 4, "init": "uniform"}
    t["eval"].update(batch_size=64, pgd=ev, cw={**ev, "kappa": 0},
                     aa={"apgd_ce": {"n_iter": 2, "n_restarts": 1, "rho": 0.75},
                         "apgd_t": {"n_iter": 2, "n_restarts": 1, "rho": 0.75, "n_target_classes": 2}})
    t["sweep"] = {"queue_depth": 2, "max_actors": 2, "progress_every_s": 2}
    small = {"fgsm_eps": {"eps_255": [2, 8]}, "pgd_eps": {"eps_255": [2, 8], "steps": 2},
             "apgd_eps": {"eps_255": [2, 8], "n_iter": 2}, "square_eps": {"eps_255": [8], "n_queries": 10, "limit": 16},
             "square": {"n_queries": 10, "limit": 16}, "wsr": {"steps": 2},
             "jacobian": {"n_projections": 2, "batches": 1, "batch_size": 32},
             "hessian": {"iterations": 2, "batches": 1, "batch_size": 16}}
    for name, section in small.items():  # the suites' own evaluations, smaller (those the params file has)
        if name in p["presets"]["full"]["eval"]:
            t["eval"][name] = {**t["eval"].get(name, {}), **section}
    p["presets"]["robnet-tiny"]["model"]["width_base"] = 2
    path.write_text(yaml.safe_dump(p, sort_keys=False))


@pytest.fixture
def sweep_env(tmp_path, monkeypatch, s3_server, data_dir):  # noqa: F811 - fixture argument
    micro_params(tmp_path / "params.yaml")
    yield from isolated_flow_env(tmp_path, monkeypatch, NARES_DATA_DIR=data_dir, NARES_S3_ENDPOINT=s3_server.endpoint_url,
                                 NARES_S3_BUCKET=f"sp-{uuid.uuid4().hex[:10]}", NARES_TABLES=tmp_path / "tables",
                                 NARES_RELEASES=tmp_path / "releases")


def _stored(root, space_name: str) -> tuple[dict[int, list[str]], dict[tuple[int, str], float], dict[int, set[str]]]:
    """Per arch_id: the manifest's checkpoint kinds; the complexity values; the evaluations of its results rows."""
    from nares.results.store import read_results
    from nares.store.tables import read_tables

    manifest = read_tables(root, ["manifest"])["manifest"]
    kinds = {a: sorted(manifest.filter(pc.equal(manifest["arch_id"], a)).column("kind").to_pylist())
             for a in set(manifest.column("arch_id").to_pylist())}
    rows = read_results(root).to_pylist()
    assert {r["space"] for r in rows} == {space_name} and {r["dataset"] for r in rows} == {"cifar10"}
    evaluations: dict[int, set[str]] = {}
    for r in rows:
        evaluations.setdefault(r["arch_id"], set()).add(r["evaluation"])
    return kinds, {(r["arch_id"], r["metric"]): r["value"] for r in rows if r["evaluation"] == "complexity"}, evaluations


def _ledger(root) -> list[dict]:
    from nares.store.tables import read_tables

    return read_tables(root, ["ledger"])["ledger"].to_pylist()


def _cli(*argv: str) -> str:
    import os
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "factory.cli", *argv], capture_output=True, text=True,
                          env={**os.environ}, check=True).stdout


def test_nb201_and_robnet_sweeps_through_prefect_and_ray(sweep_env):
    from prefect.testing.utilities import prefect_test_harness

    from flows.nares_flow import nares
    from nares.config import load_preset
    from nares.spaces import space_for
    from nares.store.ingest import complete_ids
    from nares.sweep.paths import SAFE_NAME, default_tables_root, runs_root
    from nares.sweep.request import not_evaluable, suite_evaluations

    nb_cfg = load_preset("nb201-tiny")
    nb, rob = space_for(nb_cfg), space_for(load_preset("robnet-tiny"))
    jung = suite_evaluations(nb_cfg, "jung")
    evaluated = set(jung) - set(not_evaluable(nb_cfg, jung))  # CIFAR-10-C absent: its evaluations skipped
    nb_archs = f"list:{DEAD_CONV},{SKIP},{RESNET}"
    with prefect_test_harness(server_startup_timeout=120):
        # NB201 through the parameters: space nb201 on preset tiny (→ nb201-tiny), suite jung, data set cifar10.
        # Three cells named, two classes: only the representatives are trained, each evaluated with exactly jung.
        first = nares(action="sweep", space="nb201", preset="tiny", dataset="cifar10", suite="jung",
                      archs=nb_archs)["seed0"]
        assert (first["done"], first["failed"], first["already_complete"]) == (2, 0, 0)
        reps = [nb.canonical(nb.parse(a)) for a in (SKIP, RESNET)]  # RESNET's representative is another member
        ids = sorted(nb.index().id_of(a) for a in reps)
        assert nb.parse(SKIP) in reps and len(ids) == 2
        root = default_tables_root("nb201-tiny", 0)
        kinds, complexity, evaluations = _stored(root, "nb201")
        assert kinds == {a: sorted(CHECKPOINT_KINDS) for a in ids} and complete_ids(root, "nb201") == set(ids)
        assert evaluations == {a: {"train", *evaluated} for a in ids} and complexity == {}
        assert {(r["arch_id"], r["metric"]) for r in _ledger(root) if r["metric"] != "train"} == \
            {(a, m) for a in ids for m in evaluated}
        folders = sorted(d.name for d in runs_root("nb201-tiny", 0).iterdir() if d.is_dir())
        assert len(folders) == 2 and all(SAFE_NAME.fullmatch(f) for f in folders)
        again = nares(action="sweep", space="nb201", preset="tiny", suite="jung", archs=nb_archs)["seed0"]
        assert (again["total"], again["already_complete"]) == (0, 2)

        # a validated release of the long table swept with jung, answered for any cell through its representative
        info = nares(action="publish", space="nb201", preset="tiny", suite="jung", archs=nb_archs,
                     version="nb1")["seed0"]
        assert (info["space"], info["n_archs"], info["validation"]["success"]) == ("nb201", 2, True)
        assert (info["space_settings"], info["datasets"], info["suite"]["name"]) == (
            {"name": "nb201", "cells_per_stage": 1}, ["cifar10"], "jung")
        assert set(info["suite"]["required"]) == evaluated and set(info["evaluations"]) == evaluated
        assert info["validation"]["required_evaluations"] == ["train", *[m for m in jung if m in evaluated]]
        assert "jung" in info["suites_present"] and "nares" not in info["suites_present"]
        _check_nb201_release(nb, reps, ids, evaluated)

        # RobNet through the parameters: a seeded sample (ids = positions in the draw), suite nares given
        sampled = rob.sample(2, 5)
        out = nares(action="sweep", space="robnet", preset="tiny", suite="nares", archs="sample:2@5")["seed0"]
        assert (out["done"], out["failed"]) == (2, 0)
        root = default_tables_root("robnet-tiny", 0)
        kinds, complexity, _ = _stored(root, "robnet")
        assert kinds == {1: sorted(CHECKPOINT_KINDS), 2: sorted(CHECKPOINT_KINDS)}
        assert complexity == {(i + 1, m): float(v) for i, a in enumerate(sampled)
                              for m, v in zip(("params", "macs"), rob.complexity(a, 2), strict=True)}
        _reevaluate_robnet(nares, root, sampled)
        info = nares(action="publish", space="robnet", preset="tiny", suite="nares", archs="sample:2@5",
                     version="rb1")["seed0"]
        assert (info["space"], info["n_archs"], info["validation"]["success"]) == ("robnet", 2, True)
        assert info["suite"]["name"] == "nares" and {"nares", "wsr"} <= set(info["suites_present"])
        assert info["evaluations"]["wsr"] == [1] and "complexity" in info["evaluations"]
        from nares.api import open_dataset

        ds = open_dataset(release="rb1")
        assert [ds.id_of(a) for a in sampled] == [1, 2] and ds.query(sampled[1])["representative_id"] == 2
        assert "wsr/avg_rob" in ds.query(sampled[0])["values"]
        report = json.loads(_cli("nas", "run", "--release", "rb1", "--preset", "robnet-tiny", "--runs", "2",
                                 "--workers", "1", "--json"))
        assert report["searched"] == {"archs": 2, "of": 2, "restricted": True, "budget_asked": 500}
        assert report["budget"] == 2 and all(r["found_optimum"] == 1.0 for r in report["rows"])
        assert report["optimum"]["VAL_PGD_ACC"] == max(ds.objective_values("VAL_PGD_ACC"))


def _reevaluate_robnet(nares, root, sampled) -> None:
    """re-evaluate the RobNet runs with suite wsr: only its new cells (`wsr`; `clean` is current), under the
    sweep's ids and architectures, read from the tables (no sample re-drawn); a second pass finds nothing."""
    from nares.results.store import read_results

    before = {(r["arch_id"], r["metric"]): r for r in _ledger(root)}
    out = nares(action="re-evaluate", space="robnet", preset="tiny", suite="wsr")["seed0"]
    assert (out["done"], out["failed"], out["total"]) == (2, 0, 2)
    after = {(r["arch_id"], r["metric"]): r for r in _ledger(root)}
    assert set(after) - set(before) == {(1, "wsr"), (2, "wsr")}
    assert all(after[k] == v for k, v in before.items())  # clean and the rest untouched
    rows = [r for r in read_results(root).to_pylist() if r["evaluation"] == "wsr"]
    assert {(r["arch_id"], r["arch"]) for r in rows} == {(i + 1, str(a)) for i, a in enumerate(sampled)}
    assert {r["metric"] for r in rows} >= {"acc", "avg_rob"}
    again = nares(action="re-evaluate", space="robnet", preset="tiny", suite="wsr")["seed0"]
    assert again["total"] == 0


def _check_nb201_release(nb, reps, ids, evaluated) -> None:
    import numpy as np

    from nares.api import open_dataset
    from nares.release import fetch_release
    from nares.results.store import read_results
    from nares.spaces.nb201 import N_CELLS
    from nares.validation_long import required_evaluations, validate_long

    folder = fetch_release("nb1")
    card = (folder / "DATASET_CARD.md").read_text()
    assert "search space `nb201`" in card and "representative_id" in card
    assert "Swept with suite `jung`" in card and "Data set(s): cifar10." in card and "`pgd_eps` (v1)" in card
    ds = open_dataset(release="nb1")
    assert len(ds) == N_CELLS and sorted(ds.trained.tolist()) == ids
    dead = ds.query(DEAD_CONV)  # never trained: answered by its representative
    assert (dead["representative_id"], dead["representative"]) == (nb.index().id_of(SKIP), SKIP)
    assert {k.split("/")[0] for k in dead["values"]} == {"train", *evaluated}
    assert all(0.0 <= dead["values"][f"pgd_eps/acc[{e}]"] <= 100.0 for e in ("2", "8"))
    pgd = ds.values("pgd_eps", "acc", "8")
    members = sum(nb.canonical(a) in reps for a in nb.enumerate())
    assert pgd.shape == (N_CELLS,) and np.isfinite(pgd).sum() == members
    assert np.isfinite(ds.objective_values("VAL_PGD_ACC")).sum() == members  # NaN where unanswered
    assert json.loads(_cli("query", DEAD_CONV, "--release", "nb1", "--json"))["representative"] == SKIP
    out = _cli("query", DEAD_CONV, "--release", "nb1")
    assert "is answered by its representative" in out and "pgd_eps/acc[8]" in out
    # NAS over the cells the release answers: the two classes' members, every algorithm, budget capped
    report = json.loads(_cli("nas", "run", "--release", "nb1", "--preset", "nb201-tiny", "--runs", "2",
                             "--workers", "1", "--json"))
    assert report["searched"] == {"archs": members, "of": N_CELLS, "restricted": True, "budget_asked": 500}
    assert report["budget"] == members and [r["algorithm"] for r in report["rows"]] == [
        "random_search", "local_search", "regularized_evolution", "bananas"]
    assert all(r["found_optimum"] == 1.0 and r["queries"]["max"] == members for r in report["rows"])
    assert set(report["optimum"]) == {"VAL_CLEAN_ACC", "VAL_PGD_ACC"}  # jung holds no TEST_CLEAN/PGD/CW/AA_ACC
    # the gate requires the suite swept with: it passes with jung's, names what breaks, and refuses nares's
    import pyarrow as pa
    import pyarrow.compute as pc

    from nares.store.tables import read_tables

    results = read_results(folder / "tables")
    manifest = read_tables(folder / "tables", ["manifest"])["manifest"]
    kw = dict(space=nb, index=nb.index(), dataset="cifar10", width_base=4, verify_checkpoints="none",
              required=sorted(evaluated))
    assert validate_long(results, manifest, **kw).success
    assert required_evaluations(sorted(evaluated))[0] == "train"
    no_pgd = results.filter(pc.invert(pc.equal(results["evaluation"], "pgd_eps")))
    assert any("missing_evaluations" in f for f in validate_long(no_pgd, manifest, **kw).failures)
    default = validate_long(results, manifest, **{**kw, "required": ("complexity", "clean", "pgd")})
    assert any("missing_evaluations" in f for f in default.failures)
    other = str(nb.parse(DEAD_CONV))
    moved = results.set_column(results.schema.get_field_index("arch"), "arch",
                               pa.array([other] * results.num_rows).dictionary_encode())
    failures = validate_long(moved, manifest, **kw).failures
    assert any("arch_matches_id" in f for f in failures)
