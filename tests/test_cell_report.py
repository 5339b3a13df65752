"""The cell spaces' own report figures from a long results table: NB201 by op count and parameter-free edges,
RobNet density/placement and the top-vs-bottom linear classifier, on tables with a planted objective."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from nares.analysis.cell_report import linear_classifier
from nares.analysis.long_report import build_results_report
from nares.results.build import LongBuilder
from nares.spaces.nb201 import SPACE as NB201
from nares.spaces.robnet import SPACE as ROBNET
from nares.spaces.robnet import conv_counts


def _table(space, archs, objective, scale: int):
    b = LongBuilder()
    for i, (a, v) in enumerate(zip(archs, objective, strict=True), 1):
        base = {"dataset": "cifar10", "space": space.name, "arch_id": i, "arch": space.format(a), "seed": 0}
        b.add(1, [v], metric="acc", key="", checkpoint="best", evaluation="pgd", **base)
        b.add(2, list(space.complexity(a, scale)), metric=["params", "macs"], key="", checkpoint="best",
              evaluation="complexity", **base)
    return b.table()


def test_nb201_figures_follow_a_planted_objective(tmp_path):
    archs = NB201.sample(300, seed=1)
    rng = np.random.default_rng(0)
    objective = np.array([20 + 3 * a.ops.count("nor_conv_3x3") for a in archs]) + rng.normal(0, 0.1, 300)
    page = build_results_report(_table(NB201, archs, objective, 2), NB201, tmp_path, evaluation="pgd", metric="acc")
    stats = json.loads((tmp_path / "report.json").read_text())
    conv = stats["by_op_count"]["nor_conv_3x3"]
    counts = sorted(conv, key=int)
    assert all(conv[b] > conv[a] + 2.5 for a, b in itertools.pairwise(counts))  # +3 per conv edge
    free = stats["by_param_free_edges"]  # more parameter-free edges, fewer convolutions, lower objective
    assert free[min(free, key=int)] > free[max(free, key=int)]
    for name in ("by_op_count.png", "by_param_free_edges.png", "pca_best_worst.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG" and f'src="{name}"' in page.read_text()


def test_robnet_figures_and_the_linear_classifier(tmp_path):
    archs = ROBNET.sample(400, seed=2)
    objective = np.array([30 + 2.0 * conv_counts(a)[0] + 0.1 * sum(a.bits()) for a in archs])
    build_results_report(_table(ROBNET, archs, objective, 2), ROBNET, tmp_path, evaluation="pgd", metric="acc")
    stats = json.loads((tmp_path / "report.json").read_text())
    tau = stats["kendall_tau_with_objective"]
    assert tau["direct_convs"] > 0.5 and tau["density"] > 0 and abs(tau["skip_convs"]) < tau["direct_convs"]
    clf = stats["linear_classifier"]
    assert clf["k"] == 200 and clf["accuracy"] > 0.9  # the objective is linear in the bits
    assert (tmp_path / "linear_classifier.png").read_bytes()[:4] == b"\x89PNG"


def test_linear_classifier_by_hand():
    bits = np.array([[1, 0], [1, 1], [0, 0], [0, 1], [1, 0], [0, 1]])
    values = np.array([5.0, 6.0, 1.0, 2.0, 5.5, 1.5])  # the first bit decides
    clf = linear_classifier(bits, values, k=10)
    assert clf["k"] == 3 and clf["accuracy"] == 1.0 and clf["weights"][0] > abs(clf["weights"][1])
    with pytest.raises(ValueError, match="at least two"):
        linear_classifier(bits[:1], values[:1])
