"""`LongDataset` on a hand-made long-table release of NB201: answers through representatives, values per arch_id,
ε-curves in ascending ε from the scalar keys only, and one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nares.api.dataset import open_folder
from nares.errors import DataError
from nares.results.build import LongBuilder
from nares.results.store import write_results
from nares.space_table import space_table, write_table
from nares.spaces import space_for

DEAD_CONV = "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"
SKIP = "|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"


@pytest.fixture
def release(tmp_path):
    from nares.config import load_preset

    space = space_for(load_preset("nb201-tiny"))
    index = space.index()
    aid = index.id_of(SKIP)
    b = LongBuilder()
    base = {"dataset": "cifar10", "space": "nb201", "arch_id": aid, "arch": SKIP, "seed": 0, "checkpoint": "best"}
    b.add(3, [40.0, 31.0, 12.5], evaluation="pgd_eps", metric="acc", key=["8", "0.5", "2"], **base)  # unordered keys
    b.add(2, [7.0, 3.0], evaluation="pgd_eps", metric="cm", key=["8/0/0", "8/0/1"], **base)
    b.add(1, [44.0], evaluation="clean", metric="acc", key="", **base)
    write_results(b.table(), tmp_path / "tables")
    write_table(space_table(index, 4, space), tmp_path / "architectures.parquet")
    (tmp_path / "RELEASE.json").write_text(json.dumps({"version": "t1", "space": "nb201", "preset": "nb201-tiny"}))
    return tmp_path, space, aid


def test_queries_and_curves_through_the_representative(release):
    folder, space, aid = release
    ds = open_folder(folder)
    assert len(ds) == 15_625 and ds.representative_id(DEAD_CONV) == aid == ds.id_of(SKIP)
    q = ds.query(DEAD_CONV)
    assert (q["representative"], q["values"]["clean/acc"], q["values"]["pgd_eps/acc[8]"]) == (SKIP, 44.0, 40.0)
    assert ds.curve(DEAD_CONV, "pgd_eps") == ([0.5, 2.0, 8.0], [31.0, 12.5, 40.0])  # ε ascending, no cm entries
    clean = ds.values("clean", "acc")
    same_class = [i for i in range(1, 15_626) if space.canonical(ds.arch_of(i)) == space.parse(SKIP)]
    assert np.flatnonzero(~np.isnan(clean)).tolist() == [i - 1 for i in same_class] and clean[aid - 1] == 44.0
    with pytest.raises(DataError, match="holds no fgsm_eps/acc spectrum"):
        ds.curve(SKIP, "fgsm_eps")
    with pytest.raises(DataError, match="over='severity': spectra run over eps only"):
        ds.curve(SKIP, "pgd_eps", over="severity")
    with pytest.raises(DataError, match="was not trained in release t1"):
        ds.query("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|")
    with pytest.raises(DataError, match="NAS objective 'TEST_PGD_ACC' must be a validation metric"):
        ds.objective_values("TEST_PGD_ACC")


def test_nares_query_prints_the_answer_in_key_order_without_matrix_entries(release, capsys):
    from factory.cli import main

    folder, _, aid = release
    assert main(["query", DEAD_CONV, "--data", str(folder)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{DEAD_CONV} (arch_id {main_id(DEAD_CONV)}) is answered by its representative {SKIP} (arch_id {aid})"
    rows = [line.split()[0] for line in out[2:-1]]
    assert rows == ["clean/acc", "pgd_eps/acc[0.5]", "pgd_eps/acc[2]", "pgd_eps/acc[8]"]  # ε by value, not as text
    assert out[-1].startswith("(2 entries of confusion and confidence matrices (cm, conf_true, conf_pred) not shown")
    assert main(["query", SKIP, "--data", str(folder), "--all"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"arch_id {aid}: {SKIP}" and [line.split()[0] for line in out[2:]][-2:] == [
        "pgd_eps/cm[8/0/0]", "pgd_eps/cm[8/0/1]"]


def main_id(arch: str) -> int:
    from nares.config import load_preset

    return space_for(load_preset("nb201-tiny")).index().id_of(arch)
