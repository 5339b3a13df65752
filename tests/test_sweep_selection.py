"""Sweep selection and cost ordering: hand-checked ids, orders and error messages."""

from __future__ import annotations

import pytest

from nares.spaces import space_for
from nares.spaces.wrn import N_ARCHS, Arch, arch_id, macs
from nares.sweep.selection import SweepError, order_jobs, select_archs


def test_all_and_id_ranges():
    assert [i for i, _ in select_archs("all")] == list(range(1, N_ARCHS + 1))
    assert [i for i, _ in select_archs("ids:3-5,1,5")] == [1, 3, 4, 5]
    assert str(select_archs("ids:1")[0][1]) == "4-8-4-8-4-8"        # id 1 = fewest MACs


def test_list_and_sequence_forms_agree():
    names = ["5-10-5-10-5-10", "4-8-4-8-4-8"]
    by_str = select_archs("list:" + ",".join(names))
    assert select_archs(names) == by_str
    assert [str(a) for _, a in by_str] == ["4-8-4-8-4-8", "5-10-5-10-5-10"]      # id order
    assert by_str[1][0] == arch_id(Arch.parse("5-10-5-10-5-10"))


def test_sample_is_seeded_and_distinct():
    a, b, c = select_archs("sample:25@7"), select_archs("sample:25@7"), select_archs("sample:25@8")
    assert a == b and a != c and len({i for i, _ in a}) == 25


def test_largest_first_orders_by_macs_then_id():
    pairs = select_archs("list:11-16-11-16-11-16,4-8-4-8-4-8,5-10-5-10-5-10")
    ordered = order_jobs(pairs, "largest_first")
    assert [str(a) for _, a in ordered] == ["11-16-11-16-11-16", "5-10-5-10-5-10", "4-8-4-8-4-8"]
    assert [str(a) for _, a in order_jobs(pairs, "smallest_first")] == ["4-8-4-8-4-8", "5-10-5-10-5-10",
                                                                        "11-16-11-16-11-16"]
    everything = order_jobs(select_archs("all"), "largest_first")
    m = [macs(a) for _, a in everything]
    assert m == sorted(m, reverse=True) and everything[0][0] == N_ARCHS


@pytest.mark.parametrize(("spec", "needle"), [
    ("ids:0-3", "'0-3'"), ("ids:9-2", "'9-2'"), ("ids:x", "'x'"), ("list:4-8-4-8-4-9", "4-8-4-8-4-9"),
    ("sample:0", "sample size 0"), ("best", "'best'"),
])
def test_bad_selection_names_the_value(spec, needle):
    with pytest.raises(SweepError, match=needle.replace("-", r"\-")):
        select_archs(spec)


def test_bad_order():
    with pytest.raises(SweepError, match="'random'"):
        order_jobs(select_archs("ids:1-2"), "random")


def test_selection_reads_ids_strings_and_sampling_from_the_space():
    sub = space_for({"space": {"depths": [4, 5], "widths": [8]}})  # 8 architectures
    assert [str(a) for _, a in select_archs("all", sub)] == [str(a) for _, a in sub.index()]
    assert len(select_archs("sample:8@1", sub)) == 8
    with pytest.raises(SweepError, match="'1-9' is outside 1..8"):
        select_archs("ids:1-9", sub)
    with pytest.raises(SweepError, match="depth1=7 is not one of"):
        select_archs("list:7-8-4-8-4-8", sub)
    pairs = order_jobs(select_archs("all", sub), "largest_first", width_base=1, space=sub)
    assert str(pairs[0][1]) == "5-8-5-8-5-8" and str(pairs[-1][1]) == "4-8-4-8-4-8"
