"""Search space: Arch parsing and errors, enumeration, ids, neighbourhood, sampling, id-map import."""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow.csv as pacsv
import pytest

from nares.errors import ArchError
from nares.spaces import wrn as complexity
from nares.spaces.wrn import (
    DEPTHS,
    N_ARCHS,
    WIDTHS,
    Arch,
    ArchIndex,
    all_archs,
    arch_from_id,
    arch_id,
    choice_indices,
    neighbours,
    one_hot,
    random_archs,
)

WRN_34_10 = Arch(5, 10, 5, 10, 5, 10)


def test_parse_forms_agree() -> None:
    forms = ["5-10-5-10-5-10", (5, 10, 5, 10, 5, 10), [5, 10, 5, 10, 5, 10], {"D1": 5, "W1": 10, "D2": 5, "W2": 10, "D3": 5, "W3": 10}, WRN_34_10]
    assert {Arch.parse(f) for f in forms} == {WRN_34_10}
    assert str(WRN_34_10) == "5-10-5-10-5-10"
    assert WRN_34_10.to_tuple() == (5, 10, 5, 10, 5, 10)
    assert WRN_34_10.depth_name == 34
    assert Arch.parse("11-16-11-16-11-16").depth_name == 70
    assert WRN_34_10.to_jsonl_dict() == {"D1": 5, "W1": 10, "D2": 5, "W2": 10, "D3": 5, "W3": 10}
    assert hash(Arch.parse("5-10-5-10-5-10")) == hash(WRN_34_10)


@pytest.mark.parametrize(
    ("bad", "needle"),
    [
        ("5-10-5-10-5", "not of the form"),
        ("5-10-5-10-5-10-4", "not of the form"),
        ("hello", "not of the form"),
        ("5-10-5-10-5-x", "not of the form"),
        ("", "not of the form"),
        ("6-10-5-10-5-10", "depth1=6 is not one of [4, 5, 7, 9, 11]"),
        ("5-9-5-10-5-10", "width1=9 is not one of [8, 10, 12, 14, 16]"),
        ((5, 10, 5, 10, 5), "has 5 values, expected 6"),
        ((5, 10, 5, 10, 5, 10.5), "non-integer"),
        ((5, 10, 5, 10, 5, "a"), "non-integer"),
        ({"D1": 5}, "lacks key 'W1'"),
        (3.5, "cannot read an architecture"),
        ("５-１０-5-10-5-10", "ASCII digits"),  # full-width digits
        ("5-10-5-10-5-١٠", "ASCII digits"),  # Arabic-Indic digits
        ("5-10-5-10-5-¹⁰", "ASCII digits"),  # superscripts (str.isdigit() is true)
        ({"D1": "5", "W1": 10, "D2": 5, "W2": 10, "D3": 5, "W3": 10}, "non-integer"),
        ({"D1": "５", "W1": 10, "D2": 5, "W2": 10, "D3": 5, "W3": 10}, "non-integer"),
        ({"D1": 5.7, "W1": 10, "D2": 5, "W2": 10, "D3": 5, "W3": 10}, "non-integer"),
        ((5, 10, 5, 10, 5, "10"), "non-integer"),
    ],
)
def test_malformed_archs_fail_with_one_clear_line(bad: object, needle: str) -> None:
    with pytest.raises(ArchError) as exc:
        Arch.parse(bad)  # type: ignore[arg-type]
    msg = str(exc.value)
    assert needle in msg and "\n" not in msg


def test_a_huge_argument_is_echoed_shortened() -> None:
    bad = "5-" * 5_000
    with pytest.raises(ArchError) as exc:
        Arch.parse(bad)
    msg = str(exc.value)
    assert len(msg) < 200 and "… (10000 chars)" in msg and msg.startswith("arch string '5-5-5-")
    with pytest.raises(ArchError, match=r"lacks key 'W1'") as exc:
        Arch.parse({"D1": 5, "x": "y" * 10_000})
    assert len(str(exc.value)) < 200


def test_shown_cuts_long_values_only() -> None:
    from nares.errors import shown

    assert shown("5-10") == "'5-10'" and shown(7) == "7"
    long = "ab" * 100
    assert shown(long) == repr(long)[:60] + "… (200 chars)"
    assert shown(list(range(100))).endswith(f"… ({len(repr(list(range(100))))} chars)")


def test_direct_construction_validates() -> None:
    with pytest.raises(ArchError, match="depth3=12"):
        Arch(5, 10, 5, 10, 12, 10)
    with pytest.raises(ArchError, match="width2=True"):
        Arch(5, 10, 5, True, 5, 10)  # type: ignore[arg-type]


def test_enumeration_is_complete_and_unique() -> None:
    archs = all_archs()
    assert len(archs) == N_ARCHS == 15_625 == len(set(archs))
    assert archs[0] == Arch(4, 8, 4, 8, 4, 8) and archs[-1] == Arch(11, 16, 11, 16, 11, 16)


def test_ids_ascend_in_macs_with_deterministic_tie_break() -> None:
    index = ArchIndex.default()
    rows = list(index)
    assert [i for i, _ in rows] == list(range(1, N_ARCHS + 1))
    keys = [(complexity.macs(a), complexity.params(a), a.to_tuple()) for _, a in rows]
    assert keys == sorted(keys)
    # ties in MACs exist, so the tie-break matters
    macs = [k[0] for k in keys]
    assert len(set(macs)) < N_ARCHS
    assert arch_id("4-8-4-8-4-8") == 1 and arch_from_id(N_ARCHS) == Arch(11, 16, 11, 16, 11, 16)
    assert arch_from_id(arch_id(WRN_34_10)) == WRN_34_10
    with pytest.raises(ArchError, match="outside 1..15625"):
        arch_from_id(0)


def test_import_id_map_from_published_jsonl(tmp_path) -> None:
    # a release whose ids are the reverse of ours must be kept as is
    path = tmp_path / "cifar10.jsonl"
    with path.open("w") as fh:
        for i, a in enumerate(reversed(ArchIndex.default()._by_id), 1):
            fh.write(json.dumps({"arch_id": i, "arch": a.to_jsonl_dict(), "MACs": 0.0}) + "\n")
    index = ArchIndex.from_jsonl(path)
    assert index.arch_of(1) == Arch(11, 16, 11, 16, 11, 16)
    assert index.id_of("4-8-4-8-4-8") == N_ARCHS


def test_import_id_map_rejects_incomplete_or_duplicate(tmp_path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"arch_id": 1, "arch": WRN_34_10.to_jsonl_dict()}) + "\n")
    with pytest.raises(ArchError, match="exactly 1..15625"):
        ArchIndex.from_jsonl(path)
    path.write_text("\n".join([json.dumps({"arch_id": 1, "arch": WRN_34_10.to_jsonl_dict()})] * 2))
    with pytest.raises(ArchError, match="arch_id 1 appears twice"):
        ArchIndex.from_jsonl(path)
    path.write_text("{not json\n")
    with pytest.raises(ArchError, match="bad.jsonl:1"):
        ArchIndex.from_jsonl(path)


def test_neighbourhood() -> None:
    nb = neighbours(WRN_34_10)
    assert len(nb) == len(set(nb)) == 24
    for n in nb:
        diff = [i for i, (u, v) in enumerate(zip(n.to_tuple(), WRN_34_10.to_tuple(), strict=True)) if u != v]
        assert len(diff) == 1
    # from a corner, every coordinate still has 4 alternatives
    assert len(neighbours(Arch(4, 8, 4, 8, 4, 8))) == 24


def test_random_sampling_is_seeded_and_distinct() -> None:
    a = random_archs(100, seed=3)
    assert a == random_archs(100, seed=3) and a != random_archs(100, seed=4)
    assert len(set(a)) == 100
    ex = random_archs(10, seed=0, exclude=a)
    assert not set(ex) & set(a)
    with pytest.raises(ArchError, match="cannot sample"):
        random_archs(N_ARCHS + 1, seed=0)


def test_one_hot() -> None:
    v = one_hot(Arch(4, 16, 11, 8, 7, 12))
    assert len(v) == 30 and sum(v) == 6
    assert v[0:5] == [1, 0, 0, 0, 0] and v[5:10] == [0, 0, 0, 0, 1] and v[10:15] == [0, 0, 0, 0, 1]
    assert v[15:20] == [1, 0, 0, 0, 0] and v[20:25] == [0, 0, 1, 0, 0] and v[25:30] == [0, 0, 1, 0, 0]
    assert len(DEPTHS) == len(WIDTHS) == 5


def test_choice_indices() -> None:
    assert choice_indices(Arch(4, 16, 11, 8, 7, 12)) == (0, 4, 4, 0, 2, 2)
    assert choice_indices(WRN_34_10) == (1, 1, 1, 1, 1, 1)


def test_space_export_cli(tmp_path) -> None:
    out = tmp_path / "space.csv"
    r = subprocess.run([sys.executable, "-m", "factory.cli", "space", "export", "--out", str(out)], capture_output=True, text=True, check=True)
    assert "15625" in r.stdout
    t = pacsv.read_csv(out).to_pydict()
    assert t["arch_id"] == list(range(1, N_ARCHS + 1))
    assert list(t) == ["arch_id", "arch", "d1", "w1", "d2", "w2", "d3", "w3", "params", "macs"]
    i = t["arch"].index("5-10-5-10-5-10")
    assert t["params"][i] == 46_160_474 and (t["d1"][i], t["w1"][i]) == (5, 10)
    assert t["params"][t["arch"].index("4-8-4-8-4-8")] == 23_354_842
    assert t["macs"][t["arch"].index("4-8-4-8-4-8")] == 3_361_936_896
    bad = subprocess.run([sys.executable, "-m", "factory.cli", "space", "export", "--out", str(tmp_path / "x.txt")], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "must be .csv or .parquet" in bad.stderr
