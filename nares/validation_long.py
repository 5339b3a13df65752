"""The release gate of a dataset held in the long results table (any search space other than the published WRN
layout): Great Expectations suites whose expectations come from the search space and the preset.

Checks (one expectation each, named in failures): the table's columns; one space and one dataset; every row's
arch string the one its arch_id has in the space's id map; every value finite (NaN allowed only for the confidence
means of `EMPTY_MEAN_METRICS`, a mean over no point by definition, e.g. a class never predicted); percent values in
[0, 100]; no
value twice (dataset, space, arch_id, seed, checkpoint, evaluation, version, settings hash, metric, key); per
architecture: each trained architecture is its class's representative (spaces with isomorphism classes), the
required evaluations are all present (`required`: training and the evaluations of the suite the release was swept
with, on the best checkpoint; default `REQUIRED`, the `nares` suite's: complexity, clean, FGSM, PGD, CW, AA),
params/MACs equal the space's closed form at the preset's model scale (when `complexity` is required), clean ≥ FGSM
≥ PGD ≥ AA and CW ≥ AA up to `tolerance` (percentage points = 100·tolerance; each pair whose two evaluations are
required), four checkpoints in the manifest, each in the object store with its sha256 verified; completeness
against the sweep's list when given. The gradient-masking checks
(`masking` rows) are reported per architecture (`stats["masking_flags"]`, RELEASE.json), not refused.

Imports pandas, pyarrow, Great Expectations (through `nares.validation`) and the spaces; not the store, Prefect,
Ray or the app.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from nares.constants import CHECKPOINT_KINDS
from nares.errors import ArchError
from nares.results.schema import LONG_COLUMNS, TRAIN, unit_of
from nares.spaces import SearchSpace, SpaceIndex
from nares.validation import (
    DEFAULT_TOLERANCE,
    VERIFY_LEVELS,
    ValidationResult,
    _arch_gap,
    _verify_checkpoints,
    run_suites,
    write_report,
)

BEST = "best"
REQUIRED: tuple[str, ...] = (TRAIN, "complexity", "clean", "fgsm", "pgd", "cw", "aa")
ORDERINGS: tuple[tuple[str, str], ...] = (("clean", "fgsm"), ("fgsm", "pgd"), ("pgd", "aa"), ("cw", "aa"))
UNIQUE_KEY = ["dataset", "space", "arch_id", "seed", "checkpoint", "evaluation", "version", "settings_hash",
              "metric", "key"]
# Metrics that are NaN by definition for an empty group (`nares.evaluate.confusion`: mean softmax over the points of
# a class none of which exists or is predicted, mean confidence of no correct / no incorrect prediction).
EMPTY_MEAN_METRICS: frozenset[str] = frozenset({"conf_true", "conf_pred", "conf_correct", "conf_incorrect"})


def _results_frame(results: pa.Table, space: SearchSpace, index: SpaceIndex) -> pd.DataFrame:
    df = results.to_pandas()
    for c in df.columns:  # dictionary columns → plain strings (Great Expectations compares values)
        if isinstance(df[c].dtype, pd.CategoricalDtype):
            df[c] = df[c].astype(object)
    value = df["value"].to_numpy(dtype=np.float64)
    df["value_finite"] = np.isfinite(value) | (np.isnan(value) & df["metric"].isin(EMPTY_MEAN_METRICS).to_numpy())
    units = {pair: unit_of(*pair) for pair in set(zip(df["evaluation"], df["metric"], strict=True))}
    percent = np.array([units[p] == "percent" for p in zip(df["evaluation"], df["metric"], strict=True)], dtype=bool)
    v = df["value"].to_numpy(dtype=np.float64)
    df["value_in_unit_range"] = ~percent | ((v >= 0.0) & (v <= 100.0))
    names = {}
    for aid in df["arch_id"].dropna().unique():
        try:
            names[int(aid)] = space.format(index.arch_of(int(aid)))
        except ArchError:  # an id outside the map: `arch_matches_id` names it
            names[int(aid)] = None
    df["arch_matches_id"] = [names.get(int(a)) == s for a, s in zip(df["arch_id"], df["arch"], strict=True)]
    df["version"] = df["version"].fillna(-1)
    df["settings_hash"] = df["settings_hash"].fillna("")
    return df


def required_evaluations(evaluations: Iterable[str]) -> tuple[str, ...]:
    """What the gate requires of each architecture for a suite of `evaluations`: training, then the suite's."""
    return (TRAIN, *(e for e in dict.fromkeys(evaluations) if e != TRAIN))


def _orderings(required: Iterable[str]) -> tuple[tuple[str, str], ...]:
    have = set(required)
    return tuple((a, b) for a, b in ORDERINGS if a in have and b in have)


def _archs_frame(res: pd.DataFrame, manifest: pd.DataFrame, space: SearchSpace, width_base: int,
                 required: tuple[str, ...] = REQUIRED) -> pd.DataFrame:
    rows = []
    kinds = manifest.groupby("arch_id")["kind"].agg(lambda s: ",".join(sorted(set(s))))
    for aid, g in res.groupby("arch_id", sort=True):
        arch = space.parse(g["arch"].iloc[0])
        evals = set(g["evaluation"][(g["checkpoint"] == BEST) | g["evaluation"].isin([TRAIN, "complexity"])])
        acc = {e: g["value"][(g["evaluation"] == e) & (g["metric"] == "acc") & (g["checkpoint"] == BEST)
                             & (g["key"] == "")] for e in ("clean", "fgsm", "pgd", "cw", "aa")}
        acc = {e: float(s.iloc[0]) if len(s) == 1 else np.nan for e, s in acc.items()}
        cx = {m: g["value"][(g["evaluation"] == "complexity") & (g["metric"] == m)] for m in ("params", "macs")}
        params, macs = space.complexity(arch, width_base)
        row = {"arch_id": int(aid), "arch": space.format(arch), "is_representative": space.canonical(arch) == arch,
               "missing_evaluations": ",".join(e for e in required if e not in evals),
               "params_match": len(cx["params"]) == 1 and float(cx["params"].iloc[0]) == params,
               "macs_match": len(cx["macs"]) == 1 and float(cx["macs"].iloc[0]) == macs,
               "checkpoint_kinds": kinds.get(aid, "")}
        for a, b in _orderings(required):  # NaN (a missing accuracy) fails the range check, as it should
            row[f"{a}_minus_{b}"] = acc[a] - acc[b]
        rows.append(row)
    return pd.DataFrame(rows, columns=["arch_id", "arch", "is_representative", "missing_evaluations", "params_match",
                                       "macs_match", "checkpoint_kinds",
                                       *(f"{a}_minus_{b}" for a, b in _orderings(required))])


def _suites(frames: Mapping[str, pd.DataFrame], space: SearchSpace, dataset: str, tolerance: float,
            expected: list[int] | None, verify: str, required: tuple[str, ...] = REQUIRED) -> dict[str, list]:
    import great_expectations.expectations as gxe

    r = [gxe.ExpectTableColumnsToMatchOrderedList(column_list=[*LONG_COLUMNS, "value_finite", "value_in_unit_range",
                                                               "arch_matches_id"]),
         gxe.ExpectColumnValuesToBeInSet(column="space", value_set=[space.name]),
         gxe.ExpectColumnValuesToBeInSet(column="dataset", value_set=[dataset]),
         gxe.ExpectColumnValuesToNotBeNull(column="arch_id"),
         gxe.ExpectColumnValuesToBeInSet(column="arch_matches_id", value_set=[True]),
         gxe.ExpectColumnValuesToBeInSet(column="value_finite", value_set=[True]),
         gxe.ExpectColumnValuesToBeInSet(column="value_in_unit_range", value_set=[True]),
         gxe.ExpectCompoundColumnsToBeUnique(column_list=UNIQUE_KEY)]
    a = [gxe.ExpectColumnValuesToBeUnique(column="arch_id"),
         gxe.ExpectColumnValuesToBeUnique(column="arch"),
         gxe.ExpectColumnValuesToBeInSet(column="missing_evaluations", value_set=[""]),
         gxe.ExpectColumnValuesToBeInSet(column="checkpoint_kinds", value_set=[",".join(sorted(CHECKPOINT_KINDS))])]
    if "complexity" in required:
        a += [gxe.ExpectColumnValuesToBeInSet(column="params_match", value_set=[True]),
              gxe.ExpectColumnValuesToBeInSet(column="macs_match", value_set=[True])]
    if space.has_representatives:
        a.append(gxe.ExpectColumnValuesToBeInSet(column="is_representative", value_set=[True]))
    for x, y in _orderings(required):
        a.append(gxe.ExpectColumnValuesToBeBetween(column=f"{x}_minus_{y}", min_value=-100.0 * tolerance))
    if expected is not None:
        a.append(gxe.ExpectColumnDistinctValuesToEqualSet(column="arch_id", value_set=expected))
    m = [gxe.ExpectCompoundColumnsToBeUnique(column_list=["arch_id", "kind"]),
         gxe.ExpectColumnValuesToMatchRegex(column="sha256", regex=r"^[0-9a-f]{64}$"),
         gxe.ExpectColumnValuesToBeBetween(column="size", min_value=1)]
    if verify != "none" and "checkpoint_verified" in frames["manifest"]:
        m.append(gxe.ExpectColumnValuesToBeInSet(column="checkpoint_verified", value_set=[True]))
    return {"results": r, "architectures": a, "manifest": m}


def validate_long(results: pa.Table, manifest: pa.Table, *, space: SearchSpace, index: SpaceIndex,
                  dataset: str, width_base: int, store=None, expected_archs: Iterable[int] | None = None,
                  tolerance: float = DEFAULT_TOLERANCE, verify_checkpoints: str = "full",
                  report_dir: str | Path | None = None, required: Iterable[str] = REQUIRED) -> ValidationResult:
    """Run every expectation over the long `results` and the `manifest`; the offline report goes to `report_dir`.
    `required`: the evaluations every architecture must have (`required_evaluations(suite)`; training always)."""
    from nares.errors import NaresError

    if verify_checkpoints not in VERIFY_LEVELS:
        raise NaresError(f"verify_checkpoints={verify_checkpoints!r} is not one of {list(VERIFY_LEVELS)}")
    if verify_checkpoints != "none" and store is None:
        raise NaresError("checkpoint verification needs the object store (or verify_checkpoints='none')")
    res = _results_frame(results, space, index)
    man = manifest.to_pandas()
    if verify_checkpoints != "none" and len(man):
        man["checkpoint_verified"] = _verify_checkpoints(man, store, verify_checkpoints)
    required = required_evaluations(required)
    frames = {"results": res, "architectures": _archs_frame(res, man, space, width_base, required), "manifest": man}
    expected = None if expected_archs is None else sorted({int(i) for i in expected_archs})
    suites = _suites(frames, space, dataset, tolerance, expected, verify_checkpoints, required)
    gap = "" if expected is None else _arch_gap(expected, frames["architectures"]["arch_id"].tolist())
    failures, out = run_suites(suites, frames, gap)
    flags = masking_flags_of(res, tolerance)
    result = ValidationResult(
        success=not failures, failures=failures, n_archs=len(frames["architectures"]),
        n_expectations=sum(len(e) for e in suites.values()), report_dir=str(report_dir) if report_dir else None,
        stats={"tolerance": tolerance, "width_base": width_base, "verify_checkpoints": verify_checkpoints,
               "space": space.name, "dataset": dataset, "rows": {n: len(f) for n, f in frames.items()},
               "masking_flags": flags, "required": list(required)},
    )
    if report_dir is not None:
        write_report(Path(report_dir), result, out)
    return result


def masking_flags_of(res: pd.DataFrame, tolerance: float) -> dict[str, list[str]]:
    """{arch_id: the gradient-masking checks it fails} from the `masking` rows: outputs that change between two
    identical passes (> 1e-4), zero input gradients on more than half the points, probabilities as outputs, robust
    accuracy rising with ε or under a stronger attack (> 100·tolerance points). Flags, not refusals."""
    m = res[res["evaluation"] == "masking"]
    rules = {"nondeterministic": lambda v: v > 1e-4, "zero_grad": lambda v: v > 0.5,
             "softmax_output": lambda v: v >= 1.0, "eps_not_monotone": lambda v: v > 100.0 * tolerance}
    out: dict[str, list[str]] = {}
    for (aid, metric), v in zip(zip(m["arch_id"], m["metric"], strict=True), m["value"], strict=True):
        if metric in rules and rules[metric](float(v)):
            out.setdefault(str(int(aid)), []).append(metric)
    return {k: sorted(v) for k, v in sorted(out.items())}


def summary(result: ValidationResult) -> dict[str, Any]:
    """The part of a result RELEASE.json keeps (the masking flags included: reported, not refused)."""
    return {"success": result.success, "n_expectations": result.n_expectations, "failures": result.failures,
            "tolerance": result.stats["tolerance"], "verify_checkpoints": result.stats["verify_checkpoints"],
            "required_evaluations": result.stats.get("required", list(REQUIRED)),
            "masking_flags": result.stats.get("masking_flags", {})}
