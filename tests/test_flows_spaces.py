"""The sweep deployment's flow over the neighbouring search spaces (real Prefect, Ray, trainer and S3 server):
NB201 trains only class representatives, RobNet a seeded sample; each run lands in the object store, the
ledger, the manifest and the long results table under its space, and a second run trains nothing."""

from __future__ import annotations

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
    p["presets"]["robnet-tiny"]["model"]["width_base"] = 2
    path.write_text(yaml.safe_dump(p, sort_keys=False))


@pytest.fixture
def sweep_env(tmp_path, monkeypatch, s3_server, data_dir):  # noqa: F811 - fixture argument
    micro_params(tmp_path / "params.yaml")
    yield from isolated_flow_env(tmp_path, monkeypatch, NARES_DATA_DIR=data_dir, NARES_S3_ENDPOINT=s3_server.endpoint_url,
                                 NARES_S3_BUCKET=f"sp-{uuid.uuid4().hex[:10]}", NARES_TABLES=tmp_path / "tables",
                                 NARES_RELEASES=tmp_path / "releases")


def _stored(root, space_name: str) -> tuple[dict[int, list[str]], dict[tuple[int, str], float]]:
    from nares.results.store import read_results
    from nares.store.tables import read_tables

    manifest = read_tables(root, ["manifest"])["manifest"]
    kinds = {a: sorted(manifest.filter(pc.equal(manifest["arch_id"], a)).column("kind").to_pylist())
             for a in set(manifest.column("arch_id").to_pylist())}
    rows = read_results(root).to_pylist()
    assert {r["space"] for r in rows} == {space_name}
    return kinds, {(r["arch_id"], r["metric"]): r["value"] for r in rows if r["evaluation"] == "complexity"}


def test_nb201_and_robnet_sweeps_through_prefect_and_ray(sweep_env):
    from prefect.testing.utilities import prefect_test_harness

    from flows.nares_flow import nares
    from nares.config import load_preset
    from nares.spaces import space_for
    from nares.store.ingest import complete_ids
    from nares.sweep.paths import SAFE_NAME, default_tables_root, runs_root

    nb = space_for(load_preset("nb201-tiny"))
    rob = space_for(load_preset("robnet-tiny"))
    with prefect_test_harness(server_startup_timeout=120):
        # NB201: three cells named, two classes: only the representatives are trained
        first = nares(action="sweep", preset="nb201-tiny", archs=f"list:{DEAD_CONV},{SKIP},{RESNET}")["seed0"]
        assert (first["done"], first["failed"], first["already_complete"]) == (2, 0, 0)
        reps = [nb.canonical(nb.parse(a)) for a in (SKIP, RESNET)]  # RESNET's representative is another member
        ids = sorted(nb.index().id_of(a) for a in reps)
        assert nb.parse(SKIP) in reps and len(ids) == 2
        root = default_tables_root("nb201-tiny", 0)
        kinds, complexity = _stored(root, "nb201")
        assert kinds == {a: sorted(CHECKPOINT_KINDS) for a in ids} and complete_ids(root, "nb201") == set(ids)
        assert complexity == {(nb.index().id_of(a), m): float(v) for a in reps
                              for m, v in zip(("params", "macs"), nb.complexity(a, 4), strict=True)}
        folders = sorted(d.name for d in runs_root("nb201-tiny", 0).iterdir() if d.is_dir())
        assert len(folders) == 2 and all(SAFE_NAME.fullmatch(f) for f in folders)
        again = nares(action="sweep", preset="nb201-tiny", archs=f"list:{DEAD_CONV},{SKIP},{RESNET}")["seed0"]
        assert (again["total"], again["already_complete"]) == (0, 2)

        # a validated release of the long table, answered for any cell through its representative
        info = nares(action="publish", space="nb201", preset="tiny", archs=f"list:{DEAD_CONV},{SKIP},{RESNET}",
                     version="nb1")["seed0"]
        assert (info["space"], info["n_archs"], info["validation"]["success"]) == ("nb201", 2, True)
        _check_nb201_release(nb, reps, ids, complexity)

        # RobNet: a seeded sample, ids = positions in the draw
        sampled = rob.sample(2, 5)
        out = nares(action="sweep", preset="robnet-tiny", archs="sample:2@5")["seed0"]
        assert (out["done"], out["failed"]) == (2, 0)
        root = default_tables_root("robnet-tiny", 0)
        kinds, complexity = _stored(root, "robnet")
        assert kinds == {1: sorted(CHECKPOINT_KINDS), 2: sorted(CHECKPOINT_KINDS)}
        assert complexity == {(i + 1, m): float(v) for i, a in enumerate(sampled)
                              for m, v in zip(("params", "macs"), rob.complexity(a, 2), strict=True)}
        info = nares(action="publish", preset="robnet-tiny", archs="sample:2@5", version="rb1")["seed0"]
        assert (info["space"], info["n_archs"], info["validation"]["success"]) == ("robnet", 2, True)
        from nares.api import open_dataset

        ds = open_dataset(release="rb1")
        assert [ds.id_of(a) for a in sampled] == [1, 2] and ds.query(sampled[1])["representative_id"] == 2


def _check_nb201_release(nb, reps, ids, complexity) -> None:
    import json
    import subprocess
    import sys

    import numpy as np

    from nares.api import open_dataset
    from nares.errors import DataError
    from nares.release import fetch_release
    from nares.results.store import read_results
    from nares.spaces.nb201 import N_CELLS
    from nares.validation_long import validate_long

    folder = fetch_release("nb1")
    card = (folder / "DATASET_CARD.md").read_text()
    assert "search space `nb201`" in card and "representative_id" in card
    ds = open_dataset(release="nb1")
    assert len(ds) == N_CELLS and sorted(ds.trained.tolist()) == ids
    dead = ds.query(DEAD_CONV)  # never trained: answered by its representative
    assert (dead["representative_id"], dead["representative"]) == (nb.index().id_of(SKIP), SKIP)
    assert dead["values"]["complexity/params"] == complexity[(dead["representative_id"], "params")]
    assert 0 <= dead["values"]["pgd/acc"] <= dead["values"]["clean/acc"] + 1.0
    pgd = ds.values("pgd", "acc")
    assert pgd.shape == (N_CELLS,) and np.isfinite(pgd).sum() == sum(nb.canonical(a) in reps for a in nb.enumerate())
    with pytest.raises(DataError, match="needs every architecture answered; release nb1 answers"):
        ds.objective_values("VAL_PGD_ACC")
    env = {**__import__("os").environ}
    out = subprocess.run([sys.executable, "-m", "factory.cli", "query", DEAD_CONV, "--release", "nb1", "--json"],
                         capture_output=True, text=True, env=env, check=True)
    assert json.loads(out.stdout)["representative"] == SKIP
    out = subprocess.run([sys.executable, "-m", "factory.cli", "query", DEAD_CONV, "--release", "nb1"],
                         capture_output=True, text=True, env=env, check=True)
    assert "is answered by its representative" in out.stdout and "pgd/acc" in out.stdout
    # the gate names what breaks: a complexity value off by one, a non-representative, a missing evaluation
    import pyarrow as pa
    import pyarrow.compute as pc

    from nares.store.tables import read_tables

    results = read_results(folder / "tables")
    manifest = read_tables(folder / "tables", ["manifest"])["manifest"]
    kw = dict(space=nb, index=nb.index(), dataset="cifar10", width_base=4, verify_checkpoints="none")
    assert validate_long(results, manifest, **kw).success
    is_params = pc.and_(pc.equal(results["evaluation"], "complexity"), pc.equal(results["metric"], "params"))
    bumped = results.set_column(results.schema.get_field_index("value"), "value",
                                pc.if_else(is_params, pc.add(results["value"], 1.0), results["value"]))
    assert any("params_match" in f for f in validate_long(bumped, manifest, **kw).failures)
    no_aa = results.filter(pc.invert(pc.equal(results["evaluation"], "aa")))
    assert any("missing_evaluations" in f for f in validate_long(no_aa, manifest, **kw).failures)
    other = str(nb.parse(DEAD_CONV))
    moved = results.set_column(results.schema.get_field_index("arch"), "arch",
                               pa.array([other] * results.num_rows).dictionary_encode())
    failures = validate_long(moved, manifest, **kw).failures
    assert any("arch_matches_id" in f for f in failures)
