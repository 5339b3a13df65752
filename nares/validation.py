"""The release gate: Great Expectations suites over the dataset's tables, with an HTML report (Data Docs).

Checks (one expectation each, named in failures): schema and column types of every table; every
accuracy in [0, 1]; per architecture clean ≥ FGSM ≥ PGD-20 ≥ AA-Compact and CW-40 ≥ AA-Compact,
each up to `tolerance`; stable accuracy ≥ robust accuracy (FGSM, PGD-20, CW-40) up to `tolerance`;
history length = the preset's epochs; best epoch = first argmax of the validation CW-40 curve;
four checkpoints (e74, e89, last, best) per architecture in the manifest, each present in the object
store with its sha256 verified; Params/MACs equal to the closed-form counts; unique arch ids and
unique architectures, each arch_id the one the release's id map (the space's `SpaceIndex`: the default
ascending-MACs order, or an imported one) gives its architecture, coordinates equal to the arch string;
the same architectures in every table; completeness against the sweep's list when given.

The report (`report_dir`) is self-contained, readable offline: `index.html` (no script, no remote
resource), `results/<table>.json` (Great Expectations' validation results) and `summary.json`.

Tolerance (default 0.01 = 1 percentage point): the attacks are different randomised algorithms run
independently on the same images, so a weaker attack can, point by point, succeed where a stronger
one failed, and a point misclassified clean can be classified correctly after an attack (robust but
not stable). On the 10,000 test images these effects move a few images (hundredths of a point); on the
tiny preset's 500 images one image is 0.2 point. 1 point covers both while any real fault (swapped
columns, percent stored as fractions, a metric from the wrong checkpoint) breaks it by far more.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from nares.constants import CHECKPOINT_KINDS, CORRUPTIONS
from nares.errors import shown
from nares.spaces import SearchSpace, SpaceIndex
from nares.spaces.wrn import SPACE as WRN
from nares.store.tables import SCHEMAS, TABLES

DEFAULT_TOLERANCE = 0.01
DEFAULT_ID_MAP = "default: ascending MACs, ties by parameters, then the encoding"
VERIFY_LEVELS = ("full", "head", "none")
ACC_COLUMNS = {
    "history": ("train_acc", "val_acc", "pgd", "pgd_stable", "cw", "cw_stable"),
    "test_metrics": (
        "test_clean_acc",
        "fgsm_acc",
        "fgsm_stable",
        "pgd_acc",
        "pgd_stable",
        "cw_acc",
        "cw_stable",
        "aa_acc",
        "corrupt_acc",
    ),
    "corruptions": ("acc",),
}
# Columns that may be null (everything else must be present and finite).
NULLABLE = {
    "test_metrics": ("corrupt_acc",),
    "ledger": tuple(n for n in SCHEMAS["ledger"].names if n not in ("arch_id", "metric")),
}
# (column, stronger-or-equal column): the margin `a - b` must be ≥ -tolerance.
ORDERINGS = (
    ("test_clean_acc", "fgsm_acc"),
    ("fgsm_acc", "pgd_acc"),
    ("pgd_acc", "aa_acc"),
    ("cw_acc", "aa_acc"),
    ("fgsm_stable", "fgsm_acc"),
    ("pgd_stable", "pgd_acc"),
    ("cw_stable", "cw_acc"),
)


@dataclass
class ValidationResult:
    """Outcome of `validate_tables`: `failures` names each failing expectation with an example."""

    success: bool
    failures: list[str]
    n_archs: int
    n_expectations: int
    report_dir: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _margin_name(a: str, b: str) -> str:
    return f"{a}_minus_{b}"


def _frames(
    tables: Mapping[str, pa.Table], *, store, verify: str, width_base: int, index: SpaceIndex
) -> dict[str, pd.DataFrame]:
    """pandas frames of each table, with the derived per-architecture columns the checks need (ids,
    complexity, coordinates and representatives recomputed by the id map's search space)."""
    space = index.space
    frames = {name: tables[name].to_pandas() for name in TABLES if name in tables}
    for name, df in frames.items():  # nulls and infinities escape range checks: one flag per row
        required = [c for c in SCHEMAS[name].names if c not in NULLABLE.get(name, ())]
        floats = [c for c in required if pd.api.types.is_float_dtype(df[c])]
        ok = df[required].notna().all(axis=1)
        if floats:
            ok &= np.isfinite(df[floats].to_numpy(dtype=np.float64, na_value=np.nan)).all(axis=1)
        df["values_present_and_finite"] = ok.to_numpy()
    arch = frames["architectures"]
    parsed = [space.parse(a) for a in arch["arch"]]
    expected = [space.complexity(a, width_base) for a in parsed]
    arch["params_recomputed"] = np.array([p for p, _ in expected], dtype=np.int64)
    arch["macs_recomputed"] = np.array([m for _, m in expected], dtype=np.int64)
    arch["arch_id_in_space"] = np.array([index.id_of(a) for a in parsed], dtype=np.int64)
    arch["arch_is_representative"] = [space.canonical(a) == a for a in parsed]
    names = [c for c, _ in space.coord_schema]
    coords = arch[names].astype(object).where(arch[names].notna(), None).to_numpy().tolist()
    arch["coordinates_match_arch"] = [
        row == [want[c] for c in names] for row, want in zip(coords, map(space.coords, parsed), strict=True)
    ]
    tm = frames["test_metrics"]
    for a, b in ORDERINGS:
        tm[_margin_name(a, b)] = tm[a] - tm[b]
    hist = frames["history"]
    runs = frames["runs"]
    n_epochs = hist.groupby("arch_id", sort=False).size()
    best = hist.sort_values(["arch_id", "epoch"], kind="stable")
    best = best.loc[best.groupby("arch_id", sort=False)["cw"].idxmax()].set_index("arch_id")[
        "epoch"
    ]  # first max
    runs["history_epochs"] = runs["arch_id"].map(n_epochs).fillna(0).astype(np.int64)
    runs["cw_argmax_epoch"] = runs["arch_id"].map(best).fillna(-1).astype(np.int64)
    man = frames["manifest"]
    kinds = man.groupby("arch_id")["kind"].agg(lambda s: ",".join(sorted(set(s))))
    arch["checkpoint_kinds"] = arch["arch_id"].map(kinds).fillna("")
    for name in ("runs", "test_metrics", "history"):
        arch[f"in_{name}"] = arch["arch_id"].isin(frames[name]["arch_id"])
    if verify != "none" and len(man):
        man["checkpoint_verified"] = _verify_checkpoints(man, store, verify)
    return frames


def _verify_checkpoints(man: pd.DataFrame, store, verify: str) -> list[bool]:
    from concurrent.futures import ThreadPoolExecutor

    def check(row: tuple[str, str, int]) -> bool:
        key, sha, size = row
        if verify == "full":
            return store.verify(key, sha)
        h = store.head(key)
        return h is not None and h["sha256"] == sha and h["size"] == size

    rows = list(zip(man["key"], man["sha256"], man["size"], strict=True))
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(check, rows))


def _suites(
    frames: dict[str, pd.DataFrame], *, epochs: int | None, tolerance: float, expected_archs, verify: str
) -> dict[str, list]:
    import great_expectations.expectations as gxe

    out: dict[str, list] = {name: [] for name in frames}
    for name, df in frames.items():
        schema = SCHEMAS[name]
        derived = [c for c in df.columns if c not in schema.names]
        out[name].append(gxe.ExpectTableColumnsToMatchOrderedList(column_list=[*schema.names, *derived]))
        types = schema.empty_table().to_pandas().dtypes
        for col in schema.names:
            out[name].append(gxe.ExpectColumnValuesToBeOfType(column=col, type_=str(types[col])))
        for col in ACC_COLUMNS.get(name, ()):
            out[name].append(gxe.ExpectColumnValuesToBeBetween(column=col, min_value=0.0, max_value=1.0))
        out[name].append(
            gxe.ExpectColumnValuesToBeInSet(column="values_present_and_finite", value_set=[True])
        )
    a = out["architectures"]
    a.append(gxe.ExpectColumnValuesToBeUnique(column="arch_id"))
    a.append(gxe.ExpectColumnValuesToNotBeNull(column="arch_id"))
    a.append(gxe.ExpectColumnValuesToBeUnique(column="arch"))  # one architecture under one id
    a.append(gxe.ExpectColumnPairValuesToBeEqual(column_A="arch_id", column_B="arch_id_in_space"))
    a.append(gxe.ExpectColumnValuesToBeInSet(column="coordinates_match_arch", value_set=[True]))
    a.append(gxe.ExpectColumnValuesToBeInSet(column="arch_is_representative", value_set=[True]))
    a.append(gxe.ExpectColumnPairValuesToBeEqual(column_A="params", column_B="params_recomputed"))
    a.append(gxe.ExpectColumnPairValuesToBeEqual(column_A="macs", column_B="macs_recomputed"))
    a.append(
        gxe.ExpectColumnValuesToBeInSet(
            column="checkpoint_kinds", value_set=[",".join(sorted(CHECKPOINT_KINDS))]
        )
    )
    for name in ("runs", "test_metrics", "history"):
        a.append(gxe.ExpectColumnValuesToBeInSet(column=f"in_{name}", value_set=[True]))
    if expected_archs is not None:
        a.append(gxe.ExpectColumnDistinctValuesToEqualSet(column="arch_id", value_set=sorted(expected_archs)))
    for name in ("runs", "test_metrics"):
        out[name].append(gxe.ExpectColumnValuesToBeUnique(column="arch_id"))
    for a_col, b_col in ORDERINGS:
        out["test_metrics"].append(
            gxe.ExpectColumnValuesToBeBetween(column=_margin_name(a_col, b_col), min_value=-tolerance)
        )
    r = out["runs"]
    if epochs is not None:
        r.append(
            gxe.ExpectColumnValuesToBeBetween(column="history_epochs", min_value=epochs, max_value=epochs)
        )
    r.append(gxe.ExpectColumnPairValuesToBeEqual(column_A="best_epoch", column_B="cw_argmax_epoch"))
    r.append(gxe.ExpectColumnValuesToBeBetween(column="training_time_gpu_days", min_value=0.0))
    out["history"].append(gxe.ExpectCompoundColumnsToBeUnique(column_list=["arch_id", "epoch"]))
    c = out["corruptions"]
    c.append(gxe.ExpectColumnValuesToBeInSet(column="corruption", value_set=list(CORRUPTIONS)))
    c.append(gxe.ExpectColumnValuesToBeBetween(column="severity", min_value=1, max_value=5))
    c.append(gxe.ExpectCompoundColumnsToBeUnique(column_list=["arch_id", "corruption", "severity"]))
    m = out["manifest"]
    m.append(gxe.ExpectCompoundColumnsToBeUnique(column_list=["arch_id", "kind"]))
    m.append(gxe.ExpectColumnValuesToMatchRegex(column="sha256", regex=r"^[0-9a-f]{64}$"))
    m.append(gxe.ExpectColumnValuesToBeBetween(column="size", min_value=1))
    if verify != "none" and "checkpoint_verified" in frames["manifest"]:
        m.append(gxe.ExpectColumnValuesToBeInSet(column="checkpoint_verified", value_set=[True]))
    return out


def _describe(table: str, res, arch_gap: str = "") -> str:
    """One failed expectation in words; `arch_gap` details the expected-list mismatch."""
    cfg = res.expectation_config
    kw = cfg.kwargs
    where = kw.get("column") or kw.get("column_list") or (kw.get("column_A"), kw.get("column_B"))
    text = f"{table}: {cfg.type}({where})"
    r = res.result or {}
    if cfg.type == "expect_column_distinct_values_to_equal_set":
        text += f" failed: the architectures differ from the expected list{arch_gap}"
    elif r.get("unexpected_count"):
        examples = r.get("partial_unexpected_index_list") or []
        ids = sorted({int(e["arch_id"]) for e in examples if isinstance(e, dict) and "arch_id" in e})[:5]
        # a column whose non-empty text names the problem (e.g. `missing_evaluations`): its values are shown too
        named = kw.get("value_set") == [""]
        values = list(dict.fromkeys(shown(v, 40) for v in r.get("partial_unexpected_list") or []))[:3] if named else []
        text += f" failed for {r['unexpected_count']} rows" + (
            f", e.g. arch_id {', '.join(map(str, ids))}" if ids else ""
        ) + (f" (values {', '.join(values)})" if values else "")
    elif r.get("observed_value") is not None:
        text += f" failed (observed {str(r['observed_value'])[:80]})"
    else:
        text += " failed"
    return text


def _arch_gap(expected: list[int], present_ids: Iterable[int]) -> str:
    """The architectures missing from and unexpected in the tables, relative to the expected list."""
    present = set(present_ids)
    missing, extra = sorted(set(expected) - present), sorted(present - set(expected))
    return f" ({len(missing)} missing, e.g. {missing[:5]}; {len(extra)} unexpected, e.g. {extra[:5]})"


def validate_tables(
    tables: Mapping[str, pa.Table],
    *,
    store=None,
    epochs: int | None = None,
    width_base: int = 16,
    expected_archs: Iterable[int] | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    verify_checkpoints: str = "full",
    id_map: SpaceIndex | None = None,
    space: SearchSpace | None = None,
    id_map_name: str = DEFAULT_ID_MAP,
    report_dir: str | Path | None = None,
) -> ValidationResult:
    """Run every expectation over `tables`; write the offline-readable report to `report_dir` when given.

    `verify_checkpoints`: `full` reads every checkpoint back from `store` and checks its sha256, `head`
    checks the sha256 and size the store recorded at upload, `none` checks only the manifest rows.
    `id_map`: the arch_id ↔ architecture map the tables must follow (default: the default ids of `space`, itself
    WRN by default; an id map brings its own space); `id_map_name` describes it in the report.
    """
    if verify_checkpoints not in VERIFY_LEVELS:
        from nares.errors import NaresError

        raise NaresError(f"verify_checkpoints={verify_checkpoints!r} is not one of {list(VERIFY_LEVELS)}")
    if verify_checkpoints != "none" and store is None:
        from nares.errors import NaresError

        raise NaresError("checkpoint verification needs the object store (or verify_checkpoints='none')")
    tables = {n: tables.get(n, SCHEMAS[n].empty_table()) for n in TABLES}
    missing_columns = [
        f"{n}: expect_table_columns_to_match_ordered_list failed (missing {[c for c in SCHEMAS[n].names if c not in t.column_names]})"
        for n, t in tables.items()
        if not set(SCHEMAS[n].names) <= set(t.column_names)
    ]
    if missing_columns:  # nothing else can be checked on tables of another layout
        return ValidationResult(
            success=False,
            failures=missing_columns,
            n_archs=int(tables["architectures"].num_rows),
            n_expectations=len(TABLES),
        )
    tables = {n: t.select(SCHEMAS[n].names) for n, t in tables.items()}
    expected = None if expected_archs is None else sorted({int(i) for i in expected_archs})
    frames = _frames(
        tables, store=store, verify=verify_checkpoints, width_base=width_base,
        index=id_map or (space or WRN).index(),
    )
    suites = _suites(
        frames, epochs=epochs, tolerance=tolerance, expected_archs=expected, verify=verify_checkpoints
    )
    arch_gap = "" if expected is None else _arch_gap(expected, frames["architectures"]["arch_id"].tolist())
    failures, results = run_suites(suites, frames, arch_gap)
    result = ValidationResult(
        success=not failures,
        failures=failures,
        n_archs=int(tables["architectures"].num_rows),
        n_expectations=sum(len(e) for e in suites.values()),
        report_dir=str(report_dir) if report_dir is not None else None,
        stats={
            "tolerance": tolerance,
            "epochs": epochs,
            "width_base": width_base,
            "verify_checkpoints": verify_checkpoints,
            "id_map": id_map_name,
            "rows": {n: int(t.num_rows) for n, t in tables.items()},
        },
    )
    if report_dir is not None:
        write_report(Path(report_dir), result, results)
    return result


def run_suites(suites: Mapping[str, list], frames: Mapping[str, pd.DataFrame], arch_gap: str = ""
               ) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """Run each named list of expectations over its frame (every frame has an `arch_id` column) in an ephemeral
    Great Expectations context: the failures in words (`_describe`) and each suite's results as JSON."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    failures: list[str] = []
    results: dict[str, dict[str, Any]] = {}
    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = ctx.data_sources.add_pandas("nares")
    for name, expectations in suites.items():
        suite = ctx.suites.add(gx.ExpectationSuite(name=name))
        for e in expectations:
            suite.add_expectation(e)
        batch = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("all")
        vd = ctx.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch, suite=suite))
        res = vd.run(
            batch_parameters={"dataframe": frames[name]},
            result_format={"result_format": "SUMMARY", "unexpected_index_column_names": ["arch_id"]},
        )
        failures.extend(_describe(name, r, arch_gap) for r in res.results if not r.success)
        results[name] = res.to_json_dict()
    return failures, results


def write_report(folder: Path, result: ValidationResult, results: Mapping[str, dict[str, Any]]) -> None:
    """The report folder: `index.html` (self-contained), `results/<table>.json`, `summary.json`."""
    from nares.validation_report import render_html

    if folder.exists():
        shutil.rmtree(folder)
    (folder / "results").mkdir(parents=True)
    for name, res in results.items():
        (folder / "results" / f"{name}.json").write_text(json.dumps(res, indent=1, default=str) + "\n")
    (folder / "index.html").write_text(render_html(result, results), encoding="utf-8")
    (folder / "summary.json").write_text(json.dumps(result.to_json(), indent=1) + "\n")
