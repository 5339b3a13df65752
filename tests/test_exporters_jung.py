"""Jung et al.'s layout ⇄ the long results table: the files and nesting the exporter writes (checked against
hand-computed cells), ids in NB201 order with Jung's representatives, export → import → export byte for byte, the
imported folder answering `LongDataset.query`/`curve` with the original values, exact accuracies, and malformed
files refused in one line."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pyarrow.compute as pc
import pytest
import torch

from factory.cli import main
from nares.analysis.long_report import build_dataset_report
from nares.api.dataset import open_folder
from nares.evaluate.confusion import ConfusionStats
from nares.evaluations import get_evaluation
from nares.exporters.jung import (
    JungError,
    JungIds,
    fraction_of,
    percent_of,
    read_jung,
    write_jung,
    write_long_folder,
)
from nares.records import pct_from_fraction
from nares.results.build import LongBuilder, concat
from nares.results.store import write_results
from nares.spaces.nb201 import N_CELLS, SPACE, representatives

C = 10
N_IMAGES = 40
FGSM, PGD = ["0.5", "2", "255"], ["0.1", "8"]
HAND = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def _stats(rng: np.random.Generator, n: int = N_IMAGES) -> dict:
    y = torch.as_tensor(rng.integers(0, C, n))
    logits = torch.as_tensor(rng.normal(size=(n, C)) + 2.0 * torch.nn.functional.one_hot(y, C).numpy())
    s = ConfusionStats(C)
    s.update(logits, y)
    return {**s.result().cell(), "loss": float(rng.random())}


def _hand_cell() -> dict:
    """5 images of classes 0, 0, 1, 1, 2 predicted 0, 1, 1, 1, 2: 4 correct."""
    y = torch.tensor([0, 0, 1, 1, 2])
    logits = torch.full((5, C), -5.0)
    for k, p in enumerate([0, 1, 1, 1, 2]):
        logits[k, p] = 5.0
    s = ConfusionStats(C)
    s.update(logits, y)
    return {**s.result().cell(), "loss": 0.25}


def _add(b: LongBuilder, evaluation: str, values, base: dict) -> None:
    b.add(len(values), [v.value for v in values], metric=[v.metric for v in values], key=[v.key for v in values],
          evaluation=evaluation, checkpoint="best", **base)


def _table(cells: list, *, seed: int = 0) -> tuple:
    """Long rows as the evaluations write them: confusion, fgsm_eps, pgd_eps, apgd_eps (values of pgd_eps's form),
    corruptions_cm (two of Jung's corruptions and one outside them), plus rows the layout does not hold."""
    rng = np.random.default_rng(seed)
    b = LongBuilder()
    raw: dict = {}
    spectrum = get_evaluation("pgd_eps")
    for aid, cell in enumerate(cells, 1):
        base = {"dataset": "cifar10", "space": "nb201", "arch_id": aid, "arch": str(cell), "seed": 0}
        clean = _hand_cell() if str(cell) == HAND else _stats(rng)
        _add(b, "confusion", get_evaluation("confusion").values(clean), base)
        raw[(str(cell), "clean", "")] = clean
        for ev, grid in (("fgsm_eps", FGSM), ("pgd_eps", PGD), ("apgd_eps", PGD)):
            spec = {e: _stats(rng) for e in grid}
            _add(b, ev, spectrum.values(spec), base)
            raw.update({(str(cell), ev, e): c for e, c in spec.items()})
        corr = {f"{name}/{s}": _stats(rng) for name in ("fog", "snow", "speckle_noise") for s in (1, 2, 3, 4, 5)}
        _add(b, "corruptions_cm", spectrum.values(corr), base)
        raw.update({(str(cell), "corruptions_cm", k): c for k, c in corr.items()})
        _add(b, "jacobian", get_evaluation("jacobian").values({"test": 3.0, "test@init": 1.0}), base)
        b.add(1, [7.0], evaluation="train", metric="best_epoch", key="", checkpoint="", **base)
        b.add(1, [50.0], evaluation="confusion", metric="acc", key="", checkpoint="last", **base)  # other checkpoint
    return b.table(), raw


@pytest.fixture(scope="module")
def cells():
    reps = representatives()
    picked = [SPACE.parse(HAND), reps[1], reps[100], reps[2000], reps[6000]]
    return [SPACE.canonical(c) for c in picked]


@pytest.fixture(scope="module")
def nb201_meta(tmp_path_factory):
    """A meta.json in another order than the default ids, whose representative is each class's last member."""
    folder = tmp_path_factory.mktemp("meta")
    rng = np.random.default_rng(7)
    default = JungIds.default()
    order = [default.cells[k] for k in rng.permutation(N_CELLS)]
    last = {}
    for i, c in enumerate(order):
        last[SPACE.canonical(c)] = i
    ids = {str(i): {"nb201-string": str(c), "isomorph": str(last[SPACE.canonical(c)])} for i, c in enumerate(order)}
    path = folder / "meta.json"
    path.write_text(json.dumps({"ids": ids, "epsilons": {"pgd@Linf": [0.1, 8.0]}}))
    return path


def _files(folder) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.json"))}


def test_export_writes_the_layout_with_hand_checked_values(tmp_path, cells):
    table, raw = _table(cells)
    summary = write_jung(table, tmp_path / "jung")
    names = {f"cifar10/{k}_{m}.json" for k in ("clean", "fgsm@Linf", "pgd@Linf", "aa_apgd-ce@Linf", "fog", "snow")
             for m in ("accuracy", "confidence", "cm")}
    assert set(summary["files"]) == names and summary["left_out"] == ["speckle_noise"]
    assert summary["architectures"] == 5
    meta = json.loads((tmp_path / "jung" / "meta.json").read_text())
    assert meta["epsilons"] == {"fgsm@Linf": [0.5, 2.0, 255.0], "pgd@Linf": [0.1, 8.0], "aa_apgd-ce@Linf": [0.1, 8.0]}
    assert "severities" not in meta and len(meta["ids"]) == N_CELLS
    default = JungIds.default()
    hand = default.representative(HAND)  # default ids: arch_id - 1, representative = the cheapest member
    assert hand == SPACE.index().id_of(HAND) - 1 and meta["ids"][str(hand)] == {"nb201-string": HAND,
                                                                              "isomorph": str(hand)}
    member = next(c for c in SPACE.enumerate() if SPACE.canonical(c) == cells[1] and c != cells[1])
    assert meta["ids"][str(default.id_of(member))]["isomorph"] == str(default.id_of(cells[1]))

    def read(name):
        return json.loads((tmp_path / "jung" / "cifar10" / name).read_text())["cifar10"]

    acc = read("clean_accuracy.json")["clean"]["accuracy"]
    assert sorted(acc, key=int) == list(acc) and set(acc) == {str(default.representative(c)) for c in cells}
    assert acc[str(hand)] == 0.8  # 4 of 5, a fraction
    cm = read("clean_cm.json")["clean"]["cm"][str(hand)]
    expected = np.zeros((C, C), dtype=int)
    expected[0, 0] = expected[0, 1] = expected[2, 2] = 1
    expected[1, 1] = 2
    assert cm == expected.tolist()
    conf = read("clean_confidence.json")["clean"]["confidence"][str(hand)]
    assert sorted(conf) == ["by_predicted", "by_true", "correct_incorrect"]
    top = math.exp(5) / (math.exp(5) + 9 * math.exp(-5))
    assert conf["correct_incorrect"][0] == pytest.approx(top) and conf["correct_incorrect"][1] == pytest.approx(top)
    assert conf["by_true"][3] == [None] * C and conf["by_true"][0][0] == pytest.approx(top / 2 + (1 - top) / 18)
    pgd = read("pgd@Linf_accuracy.json")["pgd@Linf"]["accuracy"]
    fog = read("fog_cm.json")["fog"]["cm"]
    for c in cells:
        rid = str(default.representative(c))
        for k, e in enumerate(PGD):  # each accuracy is the evaluation's correct/total, bit for bit
            cell = raw[(str(c), "pgd_eps", e)]
            assert pgd[rid][k] == float(np.trace(np.array(cell["cm"]))) / cell["n"] == cell["acc"]
        assert fog[rid] == [raw[(str(c), "corruptions_cm", f"fog/{s}")]["cm"] for s in (1, 2, 3, 4, 5)]
    fgsm = read("fgsm@Linf_confidence.json")["fgsm@Linf"]["confidence"]
    assert len(fgsm[str(hand)]) == 3 and fgsm[str(hand)][2]["correct_incorrect"] == pytest.approx(
        [raw[(HAND, "fgsm_eps", "255")][m] for m in ("conf_correct", "conf_incorrect")])


def test_round_trip_in_nb201_order_and_the_imported_folder_answers(tmp_path, cells, nb201_meta):
    table, raw = _table(cells)
    ids = JungIds.from_meta(nb201_meta)
    first = tmp_path / "first"
    write_jung(table, first, ids=ids)
    meta = json.loads((first / "meta.json").read_text())
    assert meta["ids"] == json.loads(nb201_meta.read_text())["ids"]  # NB201 order and Jung's representatives
    acc = json.loads((first / "cifar10" / "clean_accuracy.json").read_text())["cifar10"]["clean"]["accuracy"]
    assert set(acc) == {str(ids.representative(c)) for c in cells}
    assert any(ids.representative(c) != ids.id_of(c) for c in cells)  # a trained cell published as another member

    imported = read_jung(first)
    assert imported.inexact == 0 and imported.datasets == ["cifar10"]
    folder = write_long_folder(imported, tmp_path / "folder", version="jung-test")
    second = tmp_path / "second"
    from nares.results.store import read_results

    write_jung(read_results(folder / "tables"), second, ids=JungIds.from_meta(second.parent / "first" / "meta.json"))
    assert _files(first) == _files(second)  # byte for byte

    ds = open_folder(folder)
    assert len(ds) == N_CELLS
    for c in cells:
        members = [m for m in SPACE.enumerate() if SPACE.canonical(m) == c]
        member = next((m for m in members if ids.id_of(m) != ids.representative(c)), c)
        q = ds.query(member)
        assert q["representative_id"] == ids.representative(c) + 1 and q["arch_id"] == ids.id_of(member) + 1
        orig = {(v.metric, v.key): v.value for v in get_evaluation("confusion").values(raw[(str(c), "clean", "")])}
        assert q["values"]["confusion/acc"] == orig[("acc", "")]
        assert q["values"]["confusion/cm[0/0]"] == orig[("cm", "0/0")]
        rep_cell = ids.cells[ids.representative(c)]  # the member published (and evaluated) for the class
        assert q["representative"] == str(rep_cell)
        assert q["values"]["complexity/params"] == SPACE.complexity(rep_cell, 16)[0]
        assert "confusion/loss" not in q["values"]  # not in the layout
        eps, values = ds.curve(member, "pgd_eps")
        assert eps == [0.1, 8.0] and values == [pct_from_fraction(raw[(str(c), "pgd_eps", e)]["acc"]) for e in PGD]
        assert ds.curve(member, "fgsm_eps")[0] == [0.5, 2.0, 255.0]
        np.testing.assert_array_equal(
            [q["values"][f"corruptions_cm/conf_true[snow/3/{i}/{i}]"] for i in range(C)],
            np.diag(np.array(raw[(str(c), "corruptions_cm", "snow/3")]["conf_true"], dtype=float)))

    page = build_dataset_report(ds, tmp_path / "report")  # what `nares report` builds of the folder
    stats = json.loads((tmp_path / "report" / "report.json").read_text())
    assert stats["objective"] == "confusion_acc" and stats["architectures"] == len(cells)
    assert stats["robust_accuracy_curves"]["pgd_eps"]["eps"] == [0.1, 8.0]
    assert stats["kendall_clean_corruption"]["rows"] == ["fog", "snow"]
    assert 'src="robust_accuracy_vs_eps.png"' in page.read_text()


def test_percentages_give_back_the_published_fractions():
    for n in (10_000, 5_000, 1_000, 7):
        f = np.arange(n + 1) / n
        assert all(fraction_of(percent_of(x)) == x for x in f)  # no confusion matrix needed
    for n in (6_000, 256, 3):  # any correct/total, with its confusion matrix
        f = np.arange(n + 1) / n
        assert all(fraction_of(percent_of(x), x) == x for x in f)
        assert all(fraction_of(pct_from_fraction(x), x) == x for x in f)  # as an evaluation stores it
    assert percent_of(0.893) == 89.3 and fraction_of(89.3) == 0.893 and fraction_of(40.0) == 0.4
    rng = np.random.default_rng(0)
    for p in rng.random(2000) * 100:  # export → import → export is stable for any stored percentage
        f = fraction_of(p)
        assert fraction_of(percent_of(f)) == f


def test_a_table_without_confusion_matrices_round_trips(tmp_path, cells):
    b = LongBuilder()
    for aid, c in enumerate(cells, 1):
        b.add(2, [12.34, 100 / 3], evaluation="pgd_eps", metric="acc", key=["0.5", "8"], checkpoint="best",
              dataset="cifar10", space="nb201", arch_id=aid, arch=str(c))
    write_jung(b.table(), tmp_path / "a")
    assert _files(tmp_path / "a").keys() == {"meta.json", "cifar10/pgd@Linf_accuracy.json"}
    acc = json.loads((tmp_path / "a" / "cifar10" / "pgd@Linf_accuracy.json").read_text())["cifar10"]["pgd@Linf"]
    assert next(iter(acc["accuracy"].values())) == [0.1234, fraction_of(100 / 3)]
    imported = read_jung(tmp_path / "a")
    write_jung(imported.table, tmp_path / "b")
    assert _files(tmp_path / "a") == _files(tmp_path / "b")


def test_a_published_style_file_set_imports_exactly(tmp_path, cells):
    """Files written as the published ones are (indented JSON, float ε, 3-decimal fractions), not by write_jung."""
    ids = JungIds.default()
    rep = [str(ids.representative(c)) for c in cells[:2]]
    folder = tmp_path / "published"
    (folder / "cifar10").mkdir(parents=True)
    (folder / "meta.json").write_text(json.dumps({"ids": ids.meta_ids(), "epsilons": {"pgd@Linf": [0.1, 1.0, 255.0]}}))
    acc = {"cifar10": {"clean": {"accuracy": {rep[0]: 0.893, rep[1]: 0.1}}}}
    pgd = {"cifar10": {"pgd@Linf": {"accuracy": {rep[0]: [0.7, 0.336, 0.0], rep[1]: [0.05, 0.01, 0.0]}}}}
    sev = {"cifar10": {"fog": {"accuracy": {rep[0]: [0.8, 0.7, 0.6, 0.5, 0.4]}}}}
    for name, body in (("clean_accuracy", acc), ("pgd@Linf_accuracy", pgd), ("fog_accuracy", sev)):
        (folder / "cifar10" / f"{name}.json").write_text(json.dumps(body, indent=2))
    imported = read_jung(folder)
    assert imported.inexact == 0
    ds = open_folder(write_long_folder(imported, tmp_path / "folder"))
    member = next(m for m in SPACE.enumerate() if SPACE.canonical(m) == cells[1] and m != cells[1])
    assert ds.query(cells[0])["values"]["confusion/acc"] == 89.3
    assert ds.query(member)["values"]["confusion/acc"] == 10.0 and ds.representative_id(member) == int(rep[1]) + 1
    assert ds.curve(cells[0], "pgd_eps") == ([0.1, 1.0, 255.0], [70.0, 33.6, 0.0])
    assert ds.query(cells[0])["values"]["corruptions_cm/acc[fog/2]"] == 70.0
    write_jung(imported.table, tmp_path / "again")
    for name, body in (("clean_accuracy", acc), ("pgd@Linf_accuracy", pgd), ("fog_accuracy", sev)):
        assert json.loads((tmp_path / "again" / "cifar10" / f"{name}.json").read_text()) == body  # every float
    assert json.loads((tmp_path / "again" / "meta.json").read_text())["epsilons"] == {"pgd@Linf": [0.1, 1.0, 255.0]}


def test_severities_other_than_one_to_n_are_kept_in_meta(tmp_path, cells):
    b = LongBuilder()
    for aid, c in enumerate(cells[:2], 1):
        b.add(2, [50.0, 25.5], evaluation="corruptions_cm", metric="acc", key=["snow/2", "snow/4"], checkpoint="best",
              dataset="cifar10", space="nb201", arch_id=aid, arch=str(c))
    write_jung(b.table(), tmp_path / "a")
    assert json.loads((tmp_path / "a" / "meta.json").read_text())["severities"] == {"snow": [2, 4]}
    imported = read_jung(tmp_path / "a")
    keys = set(imported.table.filter(pc.equal(imported.table["evaluation"], "corruptions_cm")).column("key").to_pylist())
    assert keys == {"snow/2", "snow/4"}
    write_jung(imported.table, tmp_path / "b")
    assert _files(tmp_path / "a") == _files(tmp_path / "b")


def test_export_refuses_what_the_layout_cannot_hold(tmp_path, cells):
    table, _ = _table(cells[:2])
    with pytest.raises(JungError, match="nothing to export"):
        write_jung(table, tmp_path / "x", checkpoint="e74")
    for cell, message in ((cells[0], r"acc of arch \|nor_conv_3x3~0\|.* at 8 appears more than once"),
                          (cells[2], r"cifar10/pgd_eps \(pgd@Linf\): arch .* has no acc at 0\.1")):
        b = LongBuilder()  # a second value of a cell, or an architecture with part of the ε grid
        b.add(1, [40.0], evaluation="pgd_eps", metric="acc", key="8", checkpoint="best", dataset="cifar10",
              space="nb201", arch_id=99, arch=str(cell))
        with pytest.raises(JungError, match=message):
            write_jung(concat([table, b.table()]), tmp_path / "x")
    member = next(m for m in SPACE.enumerate() if SPACE.canonical(m) == cells[1] and m != cells[1])
    b = LongBuilder()
    b.add(1, [40.0], evaluation="confusion", metric="acc", key="", checkpoint="best", dataset="cifar10",
          space="nb201", arch_id=77, arch=str(member))
    with pytest.raises(JungError, match="are isomorphic"):
        write_jung(concat([table, b.table()]), tmp_path / "x")
    b = LongBuilder()
    b.add(2, [40.0, float("nan")], evaluation="fgsm_eps", metric="acc", key=["1", "2"], checkpoint="best",
          dataset="cifar100", space="nb201", arch_id=1, arch=str(cells[0]))
    with pytest.raises(JungError, match=r"fgsm@Linf: arch .* has accuracy nan at 2; the layout holds fractions"):
        write_jung(b.table(), tmp_path / "x")


def _mutate(folder, rel, fn):
    path = folder / rel
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))


_DEFAULT = JungIds.default()
NON_REP = next(i for i, r in enumerate(_DEFAULT.isomorph) if r != i)
BAD = [
    ("cifar10/clean_accuracy.json", lambda d: d["cifar10"]["clean"]["accuracy"].update({str(NON_REP): 0.5}),
     f"clean_accuracy.json: id {NON_REP} is not a representative .meta.json: isomorph {_DEFAULT.isomorph[NON_REP]}"),
    ("cifar10/clean_accuracy.json", lambda d: d["cifar10"]["clean"]["accuracy"].update({"015": 0.5}),
     "clean_accuracy.json: id '015' is not an NB201 index 0..15624"),
    ("cifar10/clean_accuracy.json", lambda d: d.update({"cifar100": {}}),
     "clean_accuracy.json: expected the dataset 'cifar10' as the only entry"),
    ("cifar10/pgd@Linf_accuracy.json", lambda d: d["cifar10"]["pgd@Linf"]["accuracy"].update(
        {k: v[:1] for k, v in d["cifar10"]["pgd@Linf"]["accuracy"].items()}),
     "pgd@Linf_accuracy.json: id .*: 1 values, expected 2 .one per ε of meta.json epsilons"),
    ("cifar10/fog_accuracy.json", lambda d: d["cifar10"]["fog"]["accuracy"].update(
        {k: [1.5, *v[1:]] for k, v in d["cifar10"]["fog"]["accuracy"].items()}),
     r"fog_accuracy.json: id .*: accuracy 1.5 is outside \[0, 1\]"),
    ("cifar10/clean_cm.json", lambda d: [m[0].__setitem__(0, 0.5) for m in d["cifar10"]["clean"]["cm"].values()],
     r"clean_cm.json: id .* \[clean\]: 0.5 is not a count"),
    ("cifar10/snow_confidence.json", lambda d: [v[0].pop("by_true") for v in d["cifar10"]["snow"]["confidence"].values()],
     r"snow_confidence.json: id .* \[snow/1\]: a confidence value is \{by_true, by_predicted, correct_incorrect\}"),
    ("cifar10/fgsm@Linf_cm.json", lambda d: d["cifar10"]["fgsm@Linf"].update({"accuracy": d["cifar10"]["fgsm@Linf"].pop("cm")}),
     "fgsm@Linf_cm.json: expected the measure 'cm' as the only entry at this level, found \\['accuracy'\\]"),
    ("meta.json", lambda d: d["epsilons"].pop("pgd@Linf"), "pgd@Linf_.*.json: meta.json has no epsilons\\['pgd@Linf'\\]"),
    ("meta.json", lambda d: d["ids"]["5"].update({"nb201-string": "|conv~0|"}), "meta.json"),
]


@pytest.mark.parametrize("rel,fn,message", BAD, ids=[b[2][:40] for b in BAD])
def test_malformed_files_are_refused_in_one_line(tmp_path, cells, rel, fn, message):
    table, _ = _table(cells[:2])
    write_jung(table, tmp_path / "jung")
    _mutate(tmp_path / "jung", rel, fn)
    with pytest.raises(JungError, match=message) as e:
        read_jung(tmp_path / "jung")
    assert "\n" not in str(e.value)


def test_unknown_files_and_missing_meta(tmp_path, cells):
    table, _ = _table(cells[:1])
    write_jung(table, tmp_path / "jung")
    (tmp_path / "jung" / "cifar10" / "cw@Linf_accuracy.json").write_text("{}")
    with pytest.raises(JungError, match="cifar10/cw@Linf_accuracy.json: not a <key>_<measure>.json"):
        read_jung(tmp_path / "jung")
    (tmp_path / "jung" / "cifar10" / "cw@Linf_accuracy.json").unlink()
    (tmp_path / "jung" / "meta.json").unlink()
    with pytest.raises(JungError, match="no meta.json"):
        read_jung(tmp_path / "jung")


def test_cli_export_and_import(tmp_path, cells, capsys):
    table, _ = _table(cells[:3])
    write_results(table, tmp_path / "tables")
    assert main(["export", "jung", "--tables", str(tmp_path / "tables"), "--out", str(tmp_path / "jung")]) == 0
    assert "wrote 18 files for 3 architectures" in capsys.readouterr().out
    assert main(["import", "jung", str(tmp_path / "jung"), "--out", str(tmp_path / "folder")]) == 0
    assert json.loads((tmp_path / "folder" / "RELEASE.json").read_text())["space"] == "nb201"
    assert main(["import", "jung", str(tmp_path / "jung"), "--out", str(tmp_path / "folder")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "exists and is not an empty folder" in err
    shutil.rmtree(tmp_path / "folder")
    assert main(["export", "jung", "--tables", str(tmp_path / "tables"), "--out", str(tmp_path / "x"),
                 "--id-map", str(tmp_path / "nope.json")]) == 2
    assert "nope.json" in capsys.readouterr().err
