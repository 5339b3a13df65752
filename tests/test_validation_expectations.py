"""The release gate: every check passes on consistent tables, and each injected fault is named."""

from __future__ import annotations

import pyarrow as pa
import pytest

from nares.store.tables import records_to_tables
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
    assert any(tmp_path.joinpath("report", "validations").rglob("*.html"))


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
