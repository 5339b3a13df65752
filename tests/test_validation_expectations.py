"""The release gate: every check passes on consistent tables, and each injected fault is named."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from nares.store.tables import SCHEMAS, records_to_tables
from nares.synthetic import synthetic_manifest, synthetic_records
from nares.validation import validate_tables

EPOCHS = 8


@pytest.fixture(scope="module")
def good_tables() -> dict[str, pa.Table]:
    t = records_to_tables(synthetic_records(30, seed=2, epochs=EPOCHS))
    t["manifest"] = synthetic_manifest(t["architectures"].column("arch_id").to_pylist())
    return t


def _edit(table: pa.Table, row: int, **values) -> pa.Table:
    rows = table.to_pylist()
    rows[row].update(values)
    return pa.Table.from_pylist(rows, schema=table.schema)


def test_consistent_tables_pass_and_write_the_report(good_tables, tmp_path):
    ids = good_tables["architectures"].column("arch_id").to_pylist()
    r = validate_tables(
        good_tables,
        epochs=EPOCHS,
        expected_archs=ids,
        verify_checkpoints="none",
        report_dir=tmp_path / "report",
    )
    assert r.success, r.failures
    assert r.n_archs == 30 and r.n_expectations > 90
    assert (tmp_path / "report" / "index.html").is_file() and (tmp_path / "report" / "summary.json").is_file()
    assert {p.name for p in tmp_path.joinpath("report", "results").iterdir()} == {f"{n}.json" for n in SCHEMAS}


def test_each_injected_fault_is_named(good_tables):
    t = dict(good_tables)
    tm = t["test_metrics"].to_pylist()
    ids = t["architectures"].column("arch_id").to_pylist()
    bad = {n: ids[k] for k, n in enumerate(["aa", "stable", "acc", "params", "best", "kinds", "dup"])}
    i = {n: ids.index(a) for n, a in bad.items()}
    t["test_metrics"] = _edit(
        t["test_metrics"], i["aa"], aa_acc=tm[i["aa"]]["pgd_acc"] + 0.05
    )  # AA above PGD-20
    t["test_metrics"] = _edit(
        t["test_metrics"], i["stable"], cw_stable=tm[i["stable"]]["cw_acc"] - 0.02
    )  # stable < robust
    t["test_metrics"] = _edit(t["test_metrics"], i["acc"], test_clean_acc=84.3)  # a percentage
    arch = t["architectures"].to_pylist()
    t["architectures"] = _edit(t["architectures"], i["params"], params=arch[i["params"]]["params"] + 1)
    runs = t["runs"].to_pylist()
    t["runs"] = _edit(t["runs"], i["best"], best_epoch=(runs[i["best"]]["best_epoch"] + 1) % EPOCHS)
    t["manifest"] = t["manifest"].filter(
        pa.compute.invert(
            pa.compute.and_(
                pa.compute.equal(t["manifest"]["arch_id"], bad["kinds"]),
                pa.compute.equal(t["manifest"]["kind"], "e89"),
            )
        )
    )
    t["runs"] = pa.concat_tables([t["runs"], t["runs"].slice(i["dup"], 1)])
    r = validate_tables(t, epochs=EPOCHS, expected_archs=[*ids, 99999], verify_checkpoints="none")
    assert not r.success
    text = "\n".join(r.failures)
    expected = [
        f"test_metrics: expect_column_values_to_be_between(pgd_acc_minus_aa_acc) failed for 1 rows, e.g. arch_id {bad['aa']}",
        f"test_metrics: expect_column_values_to_be_between(cw_stable_minus_cw_acc) failed for 1 rows, e.g. arch_id {bad['stable']}",
        f"test_metrics: expect_column_values_to_be_between(test_clean_acc) failed for 1 rows, e.g. arch_id {bad['acc']}",
        f"architectures: expect_column_pair_values_to_be_equal(('params', 'params_recomputed')) failed for 1 rows, e.g. arch_id {bad['params']}",
        f"runs: expect_column_pair_values_to_be_equal(('best_epoch', 'cw_argmax_epoch')) failed for 1 rows, e.g. arch_id {bad['best']}",
        f"architectures: expect_column_values_to_be_in_set(checkpoint_kinds) failed for 1 rows, e.g. arch_id {bad['kinds']}",
        f"runs: expect_column_values_to_be_unique(arch_id) failed for 2 rows, e.g. arch_id {bad['dup']}",
        "architectures: expect_column_distinct_values_to_equal_set(arch_id) failed: the architectures differ from the "
        "expected list (1 missing, e.g. [99999]; 0 unexpected, e.g. [])",
    ]
    for line in expected:
        assert line in text, f"{line!r} not in\n{text}"
    # AA above PGD-20 also breaks CW-40 ≥ AA for that row; clean=84.3 breaks the clean ≥ FGSM margin only upward.
    assert len(r.failures) == len(expected) + 1, text


def test_tolerance_and_history_length(good_tables):
    t = dict(good_tables)
    tm = t["test_metrics"].to_pylist()
    t["test_metrics"] = _edit(t["test_metrics"], 0, aa_acc=min(tm[0]["pgd_acc"], tm[0]["cw_acc"]) + 0.004)
    assert validate_tables(t, epochs=EPOCHS, verify_checkpoints="none").success  # within 1 point: allowed
    assert not validate_tables(t, epochs=EPOCHS, verify_checkpoints="none", tolerance=0.001).success
    r = validate_tables(good_tables, epochs=EPOCHS + 1, verify_checkpoints="none")
    assert r.failures == [
        f"runs: expect_column_values_to_be_between(history_epochs) failed for 30 rows, e.g. arch_id "
        f"{', '.join(map(str, sorted(good_tables['runs'].column('arch_id').to_pylist())[:5]))}"
    ] or r.failures[0].startswith(
        "runs: expect_column_values_to_be_between(history_epochs) failed for 30 rows"
    )


def test_tables_of_another_layout_are_refused_at_once(good_tables):
    t = dict(good_tables)
    t["history"] = t["history"].drop_columns(["cw"])
    r = validate_tables(t, epochs=EPOCHS, verify_checkpoints="none")
    assert not r.success and r.failures == [
        "history: expect_table_columns_to_match_ordered_list failed (missing ['cw'])"
    ]


def _copy_arch(tables: dict[str, pa.Table], old: int, new: int, *, keep_old: bool) -> dict[str, pa.Table]:
    """The tables with every row of arch_id `old` also (or only, `keep_old=False`) stored under `new`."""
    out = {}
    for name, t in tables.items():
        rows = t.to_pylist()
        moved = [{**r, "arch_id": new} for r in rows if r["arch_id"] == old]
        kept = rows if keep_old else [r for r in rows if r["arch_id"] != old]
        out[name] = pa.Table.from_pylist(kept + moved, schema=t.schema)
    return out


def _unused_id(tables: dict[str, pa.Table]) -> int:
    ids = set(tables["architectures"].column("arch_id").to_pylist())
    return next(i for i in range(15_625, 0, -1) if i not in ids)


def test_one_architecture_under_two_ids_is_refused(good_tables):
    aid = good_tables["architectures"].column("arch_id")[3].as_py()
    other = _unused_id(good_tables)
    t = _copy_arch(dict(good_tables), aid, other, keep_old=True)
    r = validate_tables(t, epochs=EPOCHS, verify_checkpoints="none")
    assert not r.success
    assert sorted(r.failures) == [
        f"architectures: expect_column_pair_values_to_be_equal(('arch_id', 'arch_id_in_space')) failed for 1 rows, "
        f"e.g. arch_id {other}",
        f"architectures: expect_column_values_to_be_unique(arch) failed for 2 rows, e.g. arch_id "
        f"{', '.join(map(str, sorted([aid, other])))}",
    ]


def test_an_id_that_is_not_the_architectures_id_is_refused(good_tables):
    aid = good_tables["architectures"].column("arch_id")[5].as_py()
    other = _unused_id(good_tables)
    t = _copy_arch(dict(good_tables), aid, other, keep_old=False)
    r = validate_tables(t, epochs=EPOCHS, verify_checkpoints="none")
    assert r.failures == [
        f"architectures: expect_column_pair_values_to_be_equal(('arch_id', 'arch_id_in_space')) failed for 1 rows, "
        f"e.g. arch_id {other}"
    ]


def test_an_imported_id_map_is_the_one_checked(good_tables):
    """Under an imported id map (here: the default order reversed) the default ids are wrong, the map's right."""
    from nares.spaces.wrn import ArchIndex

    default = ArchIndex.default()
    reversed_map = ArchIndex([a for _, a in reversed(list(default))])
    r = validate_tables(good_tables, epochs=EPOCHS, verify_checkpoints="none", id_map=reversed_map,
                        id_map_name="imported: reversed")
    assert r.failures == [
        "architectures: expect_column_pair_values_to_be_equal(('arch_id', 'arch_id_in_space')) failed for 30 rows, "
        f"e.g. arch_id {', '.join(map(str, sorted(good_tables['architectures'].column('arch_id').to_pylist())[:5]))}"
    ]
    renumbered = {}
    for name, t in good_tables.items():
        ids = [reversed_map.id_of(default.arch_of(i)) for i in t.column("arch_id").to_pylist()]
        renumbered[name] = t.set_column(t.schema.get_field_index("arch_id"), "arch_id", pa.array(ids, pa.int32()))
    r = validate_tables(renumbered, epochs=EPOCHS, verify_checkpoints="none", id_map=reversed_map)
    assert r.success, r.failures


def test_coordinates_that_contradict_the_arch_string_are_refused(good_tables):
    t = dict(good_tables)
    row = t["architectures"].to_pylist()[2]
    t["architectures"] = _edit(t["architectures"], 2, d1=4 if row["d1"] != 4 else 5)
    r = validate_tables(t, epochs=EPOCHS, verify_checkpoints="none")
    assert r.failures == [
        f"architectures: expect_column_values_to_be_in_set(coordinates_match_arch) failed for 1 rows, "
        f"e.g. arch_id {row['arch_id']}"
    ]


def test_release_id_map_is_loaded_before_any_work(tmp_path):
    from nares.release import ReleaseError, load_id_map
    from nares.spaces.wrn import ArchIndex
    from nares.validation import DEFAULT_ID_MAP

    index, name = load_id_map(None)
    assert name == DEFAULT_ID_MAP and index.arch_of(1) == ArchIndex.default().arch_of(1)
    with pytest.raises(ReleaseError, match=r"^id map '.*missing\.jsonl' is not a file \(expected a release's cifar10\.jsonl\)$"):
        load_id_map(tmp_path / "missing.jsonl")
    default = ArchIndex.default()
    path = tmp_path / "cifar10.jsonl"
    path.write_text("".join(
        f'{{"arch_id": {N - i + 1}, "arch": {json.dumps(a.to_jsonl_dict())}}}\n' for i, a in default
        for N in [15_625]
    ))
    index, name = load_id_map(path)
    assert index.arch_of(1) == default.arch_of(15_625) and name.startswith("imported from cifar10.jsonl (sha256 ")


def test_a_space_whose_representative_differs_is_refused(good_tables):
    """Validation asks the space for the representative of each architecture: a non-representative is named."""
    from nares.spaces.wrn import SPACE, WRNSpace

    class Mirrored(WRNSpace):  # a toy isomorphism: the stage-1 width is irrelevant, 8 represents all
        def canonical(self, arch):
            return type(arch)(arch.depth1, 8, *arch.to_tuple()[2:])

    space = Mirrored()
    wide = [r["arch_id"] for r in good_tables["architectures"].to_pylist() if r["w1"] != 8]
    r = validate_tables(good_tables, epochs=EPOCHS, verify_checkpoints="none", space=space)
    assert wide and r.failures == [
        f"architectures: expect_column_values_to_be_in_set(arch_is_representative) failed for {len(wide)} rows, "
        f"e.g. arch_id {', '.join(map(str, sorted(wide)[:5]))}"
    ]
    assert validate_tables(good_tables, epochs=EPOCHS, verify_checkpoints="none", space=SPACE).success
