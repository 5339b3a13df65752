"""Releases: validated, immutable, checksummed snapshots of the dataset, kept in the object store and in DVC.

A release `V` is a folder (`releases/V/` in the repository, `<prefix>/releases/V/` in the object store):

    tables/<table>/part-NNN.parquet   the seven tables (`nares.store.tables` layout; fractions, exact counts)
    tables/results/part-NNN.parquet    the long-format results (`nares.results`: every value, published units)
    cifar10.jsonl            the published layout (PROTOCOL §4: percent, Params/MACs in millions)
    DATASET_CARD.md          metric definitions, units, cost, provenance
    validation/              the validation report: index.html (self-contained, offline), results/*.json
                             (Great Expectations' results) and summary.json
    SHA256SUMS               sha256 of every file above
    RELEASE.json             version, validation result, counts, checksum of SHA256SUMS (uploaded last); the
                             space and its settings, the data set(s), the suite swept with and every evaluation
                             present with its versions, the corruption set's provenance

`publish` refuses to build a release whose tables fail validation (naming the failing expectations)
and never replaces an existing version. A version is listed only once its RELEASE.json is stored.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from nares.config import REPO_ROOT, load_preset, params_path
from nares.errors import NaresError
from nares.io import sha256_file
from nares.spaces import space_for

VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
RELEASE_FILE = "RELEASE.json"
SUMS_FILE = "SHA256SUMS"


class ReleaseError(NaresError):
    """A release that cannot be published, found or verified."""


class ReleaseRefused(ReleaseError):
    """Validation failed: the release was not published."""

    def __init__(self, version: str, failures: list[str], report_dir: str | None):
        self.failures, self.report_dir = failures, report_dir
        shown = "; ".join(failures[:5]) + (f"; and {len(failures) - 5} more" if len(failures) > 5 else "")
        super().__init__(
            f"release {version} refused: {len(failures)} expectation(s) failed: {shown}"
            + (f" (report: {report_dir})" if report_dir else "")
        )


def releases_root() -> Path:
    """Local release folders: `$NARES_RELEASES`, else `<repo>/releases` (DVC-tracked)."""
    from nares.environment import environment

    return environment().releases


def check_version(version: str) -> str:
    if not isinstance(version, str) or not VERSION_RE.match(version):
        raise ReleaseError(
            f"release version {version!r} must be 1-64 letters, digits, '.', '_' or '-' (e.g. v1.0)"
        )
    return version


def _store_key(store, version: str, rel: str = "") -> str:
    return store.settings.key("releases", version, rel)


def infer_preset(tables) -> str:
    """The preset of params.yaml whose width_base and epochs fit the tables."""
    import yaml

    arch = tables["architectures"]
    if arch.num_rows == 0:
        raise ReleaseError("the tables hold no architecture: nothing to release")
    a, params = arch.column("arch")[0].as_py(), arch.column("params")[0].as_py()
    hist = tables["history"]
    first = arch.column("arch_id")[0].as_py()
    n_epochs = sum(1 for i in hist.column("arch_id").to_pylist() if i == first)
    for name in yaml.safe_load(params_path().read_text())["presets"]:
        cfg = load_preset(name)
        space = space_for(cfg)
        try:
            fits = space.complexity(space.parse(a), cfg["model"]["width_base"])[0] == params
        except ValueError:  # an architecture of another preset's space
            fits = False
        if fits and cfg["train"]["epochs"] == n_epochs:
            return name
    raise ReleaseError(
        f"no preset of {params_path()} has the width_base and epochs ({n_epochs}) of these tables; name one"
    )


def release_preset(tables, preset: str | None = None) -> tuple[str, dict[str, Any]]:
    """(name, resolved config) of preset `preset`, by default the one the tables were made with."""
    preset = preset or infer_preset(tables)
    return preset, load_preset(preset)


def load_id_map(path: str | Path | tuple | None, space=None) -> tuple[Any, str]:
    """(SpaceIndex, description) of the id map a release of `space` (default WRN) follows: the default, or that
    of `path` (an existing release's jsonl, whose ids are kept); a pair already loaded is returned as it is."""
    from nares.errors import shown
    from nares.spaces import get_space
    from nares.validation import DEFAULT_ID_MAP

    if isinstance(path, tuple):
        return path
    space = space or get_space("wrn")
    if path is None:
        return space.index(), DEFAULT_ID_MAP
    if not Path(path).is_file():
        raise ReleaseError(f"id map {shown(str(path), 200)} is not a file (expected a release's cifar10.jsonl)")
    return space.index(path), f"imported from {Path(path).name} (sha256 {sha256_file(path)})"


def validate_release(
    tables,
    cfg: dict[str, Any],
    *,
    store=None,
    expected_archs: Iterable[int] | None = None,
    verify_checkpoints: str = "full",
    tolerance: float | None = None,
    id_map: str | Path | tuple | None = None,
    report_dir: str | Path | None = None,
    tables_root: str | Path | None = None,
    suite: str | None = None,
):
    """The release checks of preset `cfg`'s space, `tolerance` (default: `nares.validation.DEFAULT_TOLERANCE`);
    returns the `ValidationResult`. WRN: the record tables `tables` with the preset's epochs and width and the id
    map of `id_map` (default: ascending MACs). Any other space: the long results table under `tables_root` (its
    manifest in `tables`), requiring training and the evaluations of `suite` (`release_suite`)."""
    from nares.validation import DEFAULT_TOLERANCE, validate_tables

    tolerance = DEFAULT_TOLERANCE if tolerance is None else tolerance
    if space_for(cfg).name != "wrn":
        if tables_root is None:
            raise ReleaseError(f"a release of space {space_for(cfg).name!r} is validated from its tables folder")
        return _validate_long(tables_root, tables, cfg, store=store, expected_archs=expected_archs,
                              verify_checkpoints=verify_checkpoints, tolerance=tolerance, id_map=id_map,
                              report_dir=report_dir, required=release_suite(cfg, suite)["required"])[0]
    index, index_name = load_id_map(id_map, space_for(cfg))
    return validate_tables(
        tables,
        store=store,
        epochs=cfg["train"]["epochs"],
        width_base=cfg["model"]["width_base"],
        expected_archs=expected_archs,
        tolerance=tolerance,
        verify_checkpoints=verify_checkpoints,
        id_map=index,
        id_map_name=index_name,
        report_dir=report_dir,
    )


def _validate_long(tables_root: str | Path, tables, cfg: dict, *, store, expected_archs, verify_checkpoints: str,
                   tolerance: float, id_map, report_dir, required: list[str]):
    """`nares.validation_long.validate_long` of the long results under `tables_root`: (the result, the results
    table, the space's id map, the datasets, {arch_id: arch})."""
    from nares.results.store import read_results
    from nares.spaces.base import SpaceIndex
    from nares.validation import DEFAULT_ID_MAP
    from nares.validation_long import validate_long

    if id_map is not None and load_id_map(id_map)[1] != DEFAULT_ID_MAP:
        raise ReleaseError("an id map is imported by the space (e.g. nb201: SPACE.index('meta.json')), "
                           "not by a release of the long table")
    space = space_for(cfg)
    results = read_results(tables_root)
    if results.num_rows == 0:
        raise ReleaseError(f"the tables hold no result of space {space.name!r}: nothing to release")
    datasets = sorted(set(results.column("dataset").to_pylist()))
    ids = dict(zip(results.column("arch_id").to_pylist(), results.column("arch").to_pylist(), strict=True))
    index = space.index() if space.size is not None else SpaceIndex.from_mapping(space, ids)
    result = validate_long(results, tables["manifest"], space=space, index=index, dataset=datasets[0],
                           width_base=cfg["model"]["width_base"], store=store, expected_archs=expected_archs,
                           tolerance=tolerance, verify_checkpoints=verify_checkpoints, report_dir=report_dir,
                           required=required)
    return result, results, index, datasets, ids


def _sums(folder: Path) -> dict[str, str]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name not in (SUMS_FILE, RELEASE_FILE))
    return {p.relative_to(folder).as_posix(): sha256_file(p) for p in files}


def corruption_provenance(present: dict[str, list[int]]) -> dict[str, Any] | None:
    """The provenance of the CIFAR-10-C the release's corruption evaluations read (every evaluation present with
    `needs_corruptions`): `nares.data.corruptions.corruption_set_info()` (source official, generated with its
    manifest's identity, or absent) of the set the readers resolve by default; None when no evaluation present
    reads CIFAR-10-C. The one place a release asks for it."""
    from nares.data.corruptions import corruption_set_info
    from nares.evaluations import evaluation_names, get_evaluation

    known = set(evaluation_names())
    if not any(e in known and get_evaluation(e).needs_corruptions for e in present):
        return None
    return corruption_set_info()


def _evaluations_present(tables_root: Path) -> dict[str, list[int]]:
    """{evaluation: sorted versions} of the evaluated cells the long results table holds (training left out)."""
    import pyarrow.parquet as pq

    from nares.results.schema import TRAIN
    from nares.results.store import RESULTS_TABLE

    found: dict[str, set[int]] = {}
    for path in sorted((tables_root / RESULTS_TABLE).glob("part-*.parquet")):
        t = pq.read_table(path, columns=["evaluation", "version"]).group_by(["evaluation", "version"]).aggregate([])
        for ev, v in zip(t.column("evaluation").to_pylist(), t.column("version").to_pylist(), strict=True):
            if ev != TRAIN:
                found.setdefault(str(ev), set()).update([] if v is None else [int(v)])
    return {ev: sorted(vs) for ev, vs in sorted(found.items())}


def release_suite(cfg: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    """The suite a release of preset `cfg` was swept with (`name`, default the preset's `eval.suite`, else `nares`):
    {"name", "evaluations": {evaluation: current version}, "required": what the gate requires, "not_evaluated":
    {evaluation: why}}. An evaluation that cannot run where the release is made (`not_evaluable`: CIFAR-10-C absent)
    is skipped by the evaluator and re-evaluate alike, so it is listed as not evaluated instead of required. A bad
    name is one line."""
    from nares.evaluations import DEFAULT_SUITE, get_evaluation, suite
    from nares.sweep.request import not_evaluable

    name = name or cfg["eval"].get("suite") or DEFAULT_SUITE
    try:
        members = suite(cfg, name)
    except NaresError as e:
        raise ReleaseError(f"suite {name!r}: {e}") from None
    skipped = {m: f"{why} where the release was made" for m, why in not_evaluable(cfg, members).items()}
    return {"name": name, "evaluations": {m: get_evaluation(m).version(cfg) for m in members},
            "required": [m for m in members if m not in skipped], "not_evaluated": skipped}


def _coverage(cfg: dict[str, Any], suite_info: dict[str, Any], present: dict[str, list[int]]) -> dict[str, Any]:
    """RELEASE.json's description of what the release holds: the suite, the evaluations present with versions,
    the preset's suites whose every evaluation is present at its current version (those that cannot run here,
    `not_evaluable`, excepted)."""
    from nares.evaluations import get_evaluation, suites
    from nares.sweep.request import not_evaluable

    full = [n for n, members in suites(cfg).items()
            if all(get_evaluation(m).version(cfg) in present.get(m, []) or m in not_evaluable(cfg, [m])
                   for m in members)]
    return {"suite": suite_info, "evaluations": present, "suites_present": full}


def _coverage_lines(info: dict[str, Any], corruption: dict[str, Any] | None) -> list[str]:
    """The card's section on the space, the data set(s), the suite and evaluations, and the corruption set."""
    st = info["suite"]
    lines = [
        "## Space, data set and evaluations",
        f"- Search space `{info['space']}`, settings {info['space_settings']}, model scale `model.width_base` = "
        f"{info['model_scale']}.",
        f"- Data set(s): {', '.join(info['datasets']) or 'none'}.",
        f"- Swept with suite `{st['name']}`: "
        + ", ".join(f"`{m}` v{v}" for m, v in st["evaluations"].items()) + "; the gate requires "
        + (", ".join(f"`{m}`" for m in st["required"]) or "nothing more than training") + " of every architecture."
        + "".join(f" `{m}` was not evaluated: {why}." for m, why in st["not_evaluated"].items()),
        "- Evaluations present (versions): "
        + (", ".join(f"`{e}` ({', '.join(f'v{v}' for v in vs) or 'version unknown'})"
                     for e, vs in info["evaluations"].items()) or "none") + ".",
        f"- Suites of the preset present in full (evaluations that cannot run here excepted): "
        f"{', '.join(f'`{n}`' for n in info['suites_present']) or 'none'}.",
    ]
    if corruption is not None:
        lines.append(_corruption_line(corruption))
    return [*lines, ""]


def _corruption_line(c: dict[str, Any]) -> str:
    """The card's line on the CIFAR-10-C its corruption evaluations read (`corruption_provenance`)."""
    if c.get("source") == "official":
        return (f"- Corruption set: the official CIFAR-10-C files ({c.get('reference')}), {c.get('per_severity')} "
                "images per severity.")
    if c.get("source") == "generated":
        src = c.get("source_images") or {}
        return (f"- Corruption set: GENERATED here, not the official files: {c.get('generator')} "
                f"v{c.get('generator_version')} after {c.get('reference')}, seed {c.get('seed')}, set_id "
                f"`{c.get('set_id')}`, from {src.get('images')} images of {src.get('dataset')} (sha256 "
                f"`{src.get('sha256')}`), {c.get('per_severity')} per severity; libraries {c.get('libraries')}; "
                f"deviations from the reference: {'; '.join(c.get('deviations') or []) or 'none'}. Its numbers are "
                "CIFAR-10-C-like: the published files' random draws cannot be recovered.")
    return "- Corruption set: " + ", ".join(f"{k} {v}" for k, v in c.items()) + "."


def _cost(tables) -> dict[str, Any]:
    """The cost of the release in device-seconds (wall time the device was held, synchronised on CUDA) with
    the devices named, per phase: training from `runs` (the records' training_time, device-days), evaluation
    from the `ledger` (per metric)."""
    from nares.store.ingest import TRAIN_METRIC
    from nares.train.trainer import SECONDS_PER_DAY

    runs, ledger = tables["runs"], tables["ledger"]
    train_days = sum(v for v in runs.column("training_time_gpu_days").to_pylist() if v is not None)
    by_metric: dict[str, float] = {}
    eval_devices: set[str] = set()
    for m, d, s in zip(
        ledger.column("metric").to_pylist(),
        ledger.column("device").to_pylist(),
        ledger.column("device_seconds").to_pylist(),
        strict=True,
    ):
        if m != TRAIN_METRIC and s is not None:
            by_metric[m] = by_metric.get(m, 0.0) + s
            eval_devices.update([d] if d else [])
    eval_seconds = sum(by_metric.values())
    return {
        "training": {
            "device_seconds": train_days * SECONDS_PER_DAY,
            "device_days": train_days,
            "devices": sorted({d for d in runs.column("gpu_type").to_pylist() if d}),
        },
        "evaluation": {
            "device_seconds": eval_seconds,
            "device_days": eval_seconds / SECONDS_PER_DAY,
            "devices": sorted(eval_devices),
            "device_seconds_by_metric": dict(sorted(by_metric.items())),
        },
    }


def _dataset_card(
    version: str, preset: str, cfg: dict, n_archs: int, cost: dict, validation: dict, created: str,
    coverage: list[str] = (),
) -> str:
    ev = cfg["eval"]
    lines = [
        f"# NARes release {version}",
        "",
        f"Created {created} from preset `{preset}` (params.yaml); search space `{space_for(cfg).name}`; "
        f"{n_archs} architectures; "
        f"validation {'passed' if validation['success'] else 'FAILED'} ({validation['n_expectations']} expectations, "
        "report in `validation/index.html`).",
        "",
        "## Files and units",
        "- `cifar10.jsonl`: one JSON object per architecture in the published NARes layout. Every accuracy and",
        "  stable accuracy is a PERCENTAGE (0–100); losses and Lipschitz estimates are raw; `Params` and `MACs`",
        "  are in MILLIONS (e.g. 23.354842 and 3361.936896 for 4-8-4-8-4-8); `timestamp` is YYYY-MM-DD;",
        "  `training_time` is in GPU-days (device-days when trained without a GPU); `best_epoch` is 0-based.",
        "- `tables/*.parquet`: the same data in columns. Accuracies are FRACTIONS in [0, 1]; `params`/`macs` are",
        "  exact counts. Tables: architectures, runs, history (one row per epoch), test_metrics, corruptions,",
        "  manifest (arch_id, checkpoint kind → object key, sha256, size, epoch), ledger (cost of every",
        "  evaluation: device, device_seconds, timestamps, code version, settings hash).",
        "- `SHA256SUMS`: sha256 of every file; `RELEASE.json`: summary and the sha256 of SHA256SUMS.",
        "",
        *coverage,
        "## Metric definitions",
        f"- Architecture `D1-W1-D2-W2-D3-W3`; arch_id map: {validation['id_map']}.",
        f"- Training: {cfg['train']['epochs']} epochs of PGD-{cfg['train']['attack']['steps']} adversarial training,"
        f" ε = {cfg['train']['attack']['eps_255']}/255, seed recorded per run.",
        f"- VAL_* (per epoch, `train[0]` lists): validation split `{cfg['data']['val']}`; clean accuracy and loss;"
        f" PGD-{cfg['validation']['pgd']['steps']} and CW-{cfg['validation']['cw']['steps']} accuracy, stable accuracy,"
        " Lipschitz estimate and loss. VAL_* metrics of an architecture are read at `best_epoch`.",
        f"- best_epoch: the epoch of highest validation CW-{cfg['validation']['cw']['steps']} accuracy (ties: earlier).",
        f"- TEST_* (`test_best[0]`): best checkpoint on the test split `{cfg['data']['test']}`"
        f"{'' if cfg['data']['test_limit'] is None else ' (first ' + str(cfg['data']['test_limit']) + ' images)'}, L∞ ε = {ev['eps_255']}/255:"
        f" clean; FGSM (one step of ε); PGD-{ev['pgd']['steps']} (step {ev['pgd']['step_255']}/255, uniform start);"
        f" CW-{ev['cw']['steps']} (margin loss, κ = {ev['cw']['kappa']}); AA-Compact (APGD-CE then APGD-T,"
        f" {ev['aa']['apgd_ce']['n_iter']} iterations each; robust only if both fail).",
        "- Stable accuracy: share of points whose prediction on the attacked input equals the clean prediction.",
        "- Lipschitz: mean of ‖f(x) − f(x̂)‖₁ / ‖(x − x̂) + 1e-6‖∞ on logits.",
        "- Corruptions: CIFAR-10-C, accuracy and loss per (corruption, severity 1..5); TEST_CORRUPT_ACC is the mean",
        "  over the evaluated cells (`corrupt_acc` in test_metrics; empty when CIFAR-10-C was not evaluated).",
        "",
        "## Cost",
        "Device-seconds: the wall time the device (`cpu` or the GPU named) was held for the phase, synchronised",
        "on CUDA; one convention for training and evaluation, on every device.",
        *(
            f"- {phase.capitalize()}: {c['device_seconds']:.6g} device-seconds ({c['device_days']:.6g} device-days)"
            f" on {', '.join(c['devices']) or 'n/a'}."
            for phase, c in cost.items()
        ),
        *(f"  - {m}: {s:.6g} device-seconds" for m, s in cost["evaluation"]["device_seconds_by_metric"].items()),
        "",
        "## Checkpoints",
        "Four per architecture (e74, e89, last, best), content-addressed in the object store; `manifest` gives each",
        "key and sha256 (`nares store get KEY`). In a clone of the repository, `dvc pull releases/<version>/checkpoints/<arch>`",
        "fetches one architecture's four (`checkpoints/<arch>/<kind>.pt`), `dvc pull releases/<version>` everything.",
        "",
    ]
    return "\n".join(lines)


def _refuse(version: str, staging: Path, failures: list[str]) -> None:
    """Keep the refused validation report under `$NARES_HOME/refused/` and raise ReleaseRefused."""
    from nares.store.settings import nares_home

    kept = nares_home() / "refused" / f"{version}-{dt.datetime.now(dt.UTC).strftime('%Y%m%dT%H%M%S')}"
    kept.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(staging / "validation"), kept)
    raise ReleaseRefused(version, failures, str(kept))


def _gate_wrn(staging: Path, tables, preset: str, cfg: dict, *, store, expected_archs, verify_checkpoints: str,
              tolerance, id_map, version: str, lap, suite_info: dict, coverage) -> tuple[int, dict, dict, str,
                                                                                          dict[int, str]]:
    """The published WRN layout: the wide tables' gate (the record's evaluations), `cifar10.jsonl`, the NARes
    card. `cifar10.jsonl` is exported from the long results table (the source of truth; the record tables are its
    view, written at ingest)."""
    from nares.exporters.nares_jsonl import write_results_jsonl

    result = validate_release(tables, cfg, store=store, expected_archs=expected_archs,
                              verify_checkpoints=verify_checkpoints, tolerance=tolerance, id_map=id_map,
                              report_dir=staging / "validation")
    lap("validate")
    if not result.success:
        _refuse(version, staging, result.failures)
    n = write_results_jsonl(staging / "tables", staging / "cifar10.jsonl")
    if n != tables["architectures"].num_rows:
        raise ReleaseError(f"the long results table holds {n} complete records, the record tables "
                           f"{tables['architectures'].num_rows}: re-ingest the runs (`nares store ingest`)")
    lap("export_jsonl")
    created = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    cost = _cost(tables)
    validation = {"success": result.success, "n_expectations": result.n_expectations, "failures": result.failures,
                  "tolerance": result.stats["tolerance"], "verify_checkpoints": verify_checkpoints,
                  "id_map": result.stats["id_map"]}
    arch = tables["architectures"]
    arch_of = dict(zip(arch.column("arch_id").to_pylist(), arch.column("arch").to_pylist(), strict=True))
    from nares.datasets import dataset_for

    card = _dataset_card(version, preset, cfg, n, cost, validation, created, coverage([dataset_for(cfg).name]))
    return n, cost, {**validation, "created": created}, card, arch_of


def _gate_long(staging: Path, tables, preset: str, cfg: dict, *, store, expected_archs, verify_checkpoints: str,
               tolerance, id_map, version: str, lap, suite_info: dict, coverage) -> tuple[int, dict, dict, str,
                                                                                           dict[int, str]]:
    """Any other space: the long results table's gate (`nares.validation_long`: training and the evaluations of
    the suite swept with), the space table of the released architectures (`architectures.parquet`: every
    architecture of an enumerable space, with its representative), the space's card."""
    from nares.space_table import space_table, write_table
    from nares.validation import DEFAULT_TOLERANCE
    from nares.validation_long import summary

    space = space_for(cfg)
    result, results, index, datasets, ids = _validate_long(
        staging / "tables", tables, cfg, store=store, expected_archs=expected_archs,
        verify_checkpoints=verify_checkpoints, tolerance=DEFAULT_TOLERANCE if tolerance is None else tolerance,
        id_map=id_map, report_dir=staging / "validation", required=suite_info["required"])
    lap("validate")
    if not result.success:
        _refuse(version, staging, result.failures)
    write_table(space_table(index, cfg["model"]["width_base"], space), staging / "architectures.parquet")
    created = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    cost = _cost_long(results, tables["ledger"])
    validation = {**summary(result), "id_map": "the space's default ids" if space.size is not None
                  else "positions in the sweep's seeded sample"}
    card = _long_card(version, preset, cfg, space, result.n_archs, datasets, cost, validation, created,
                      coverage(datasets))
    return result.n_archs, cost, {**validation, "created": created}, card, ids


def _cost_long(results, ledger) -> dict[str, Any]:
    """`_cost` of a long-table release: training from the results' `train/training_time` (device-days),
    evaluation from the ledger."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from nares.results.schema import TRAIN

    train = results.filter(pc.and_(pc.equal(results["evaluation"], TRAIN), pc.equal(results["metric"], "training_time")))
    days = float(sum(train.column("value").to_pylist()))
    runs = pa.table({"training_time_gpu_days": [days], "gpu_type": [None]})
    cost = _cost({"runs": runs, "ledger": ledger})
    cost["training"]["devices"] = sorted({d for d in train.column("device").to_pylist() if d})
    return cost


def _long_card(version: str, preset: str, cfg: dict, space, n_archs: int, datasets: list[str], cost: dict,
               validation: dict, created: str, coverage: list[str] = ()) -> str:
    """The dataset card of a long-table release: space, preset, data set(s), suite and evaluations, files, units,
    cost, checkpoints."""
    classes = (" Isomorphic architectures share one trained representative (`representative_id` in "
               "`architectures.parquet`); a query of any architecture is answered through it.") \
        if space.has_representatives else ""
    lines = [
        f"# Release {version}: search space `{space.name}`",
        "",
        f"Created {created} from preset `{preset}` (params.yaml); dataset {', '.join(datasets)}; {n_archs} trained "
        f"architectures; validation {'passed' if validation['success'] else 'FAILED'} "
        f"({validation['n_expectations']} expectations, report in `validation/index.html`).",
        "",
        "## The search space",
        f"{(type(space).__doc__ or space.name).strip().splitlines()[0]} (`{type(space).__module__}`; model scale "
        f"`model.width_base` = {cfg['model']['width_base']}; settings {dict(cfg.get('space') or {})}).{classes}",
        f"arch_ids: {validation['id_map']}.",
        "",
        *coverage,
        "## Files and units",
        "- `tables/results/*.parquet`: the long results table, one row per value (dataset, space, arch_id, arch, seed,",
        "  checkpoint, evaluation, version, settings_hash, metric, key, value, device, device_seconds, timestamp,",
        "  code_version). Accuracies are PERCENTAGES (0–100), params/MACs exact counts, losses raw; `key` carries ε,",
        "  severity or epoch (`train`).",
        "- `architectures.parquet`: arch_id, arch, the space's coordinates, params, macs"
        + (", representative_id." if space.has_representatives else "."),
        "- `tables/manifest`, `tables/ledger`: checkpoints (key, sha256) and the cost of every evaluated cell.",
        "- `SHA256SUMS`: sha256 of every file; `RELEASE.json`: summary and the sha256 of SHA256SUMS.",
        "",
        "## Protocol",
        f"- Training: {cfg['train']['epochs']} epochs of PGD-{cfg['train']['attack']['steps']} adversarial training,"
        f" ε = {cfg['train']['attack']['eps_255']}/255; best checkpoint by validation CW accuracy.",
        "- Evaluations on the best checkpoint: those of the section above, each with its settings under "
        "`eval.<evaluation>` of the preset (params.yaml) and its version in the results' `version` column.",
        "",
        "## Cost",
        *(f"- {phase.capitalize()}: {c['device_seconds']:.6g} device-seconds on {', '.join(c['devices']) or 'n/a'}."
          for phase, c in cost.items()),
        "",
        "## Checkpoints",
        "Four per architecture, content-addressed in the object store (`tables/manifest`); in a clone of the",
        "repository `dvc pull releases/<version>/checkpoints/<arch>` fetches one architecture's.",
        "",
    ]
    return "\n".join(lines)


def _dvc(repo: Path, *args: str, env: dict[str, str]) -> str:
    exe = shutil.which("dvc") or str(Path(sys.executable).parent / "dvc")
    out = subprocess.run([exe, *args], cwd=repo, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        msg = (out.stderr.strip() or out.stdout.strip()).splitlines()
        raise ReleaseError(f"`dvc {' '.join(args)}` failed: {msg[-1] if msg else out.returncode}")
    return out.stdout


def dvc_env(settings) -> dict[str, str]:
    """The environment DVC needs to reach the object store: the settings' credentials as AWS_* variables
    (the way user credentials reach DVC; they are never written to disk). Without credentials in
    `settings`, the caller's AWS_* variables (or DVC's own chain) apply."""
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    if settings.access_key_id:
        for var, value in (
            ("AWS_ACCESS_KEY_ID", settings.access_key_id),
            ("AWS_SECRET_ACCESS_KEY", settings.secret_access_key),
            ("AWS_SESSION_TOKEN", settings.session_token),
        ):
            if value:
                env[var] = value
            else:
                env.pop(var, None)
    return env


DVC_REMOTE = "store"


def _dvc_remote(repo: Path, files: tuple[str, ...] = ("config", "config.local")) -> dict[str, str]:
    """The `store` remote's settings as DVC resolves them (`.dvc/config`, then `.dvc/config.local`)."""
    import configparser

    out: dict[str, str] = {}
    for name in files:
        parser = configparser.ConfigParser()
        parser.read(repo / ".dvc" / name)
        section = f"'remote \"{DVC_REMOTE}\"'"
        if parser.has_section(section):
            out.update(parser[section])
    return out


def checkpoint_entries(store, tables, arch_of: dict[int, str]) -> list[dict[str, Any]]:
    """The release's checkpoints as DVC sees them: {relpath `checkpoints/<name>/<kind>.pt`, md5, size} (`name`:
    the architecture's run folder name, `nares.sweep.paths.run_name`: its string when that is a safe name), the
    md5 read from each object's metadata (recorded at ingest, `nares.store.ingest.store_checkpoint`); an object
    ingested before md5s were recorded is hashed and placed once, here. `arch_of`: arch_id → arch string."""
    from nares.store.ingest import store_checkpoint
    from nares.sweep.paths import run_name

    arch_of = {aid: run_name(a) for aid, a in arch_of.items()}
    m = tables["manifest"]
    rows = list(zip(*(m.column(c).to_pylist() for c in ("arch_id", "kind", "key", "size")), strict=True))

    def entry(row) -> dict[str, Any]:
        aid, kind, key, size = row
        md5 = (store.head(key) or {}).get("md5")
        if md5 is None:
            with tempfile.TemporaryDirectory() as tmp:
                store.get_file(key, Path(tmp) / "ckpt.pt")
                md5 = store_checkpoint(store, Path(tmp) / "ckpt.pt")[3]
        return {"relpath": f"checkpoints/{arch_of[aid]}/{kind}.pt", "md5": md5, "size": size}

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(entry, rows))


def _add_to_dvc_dir(repo: Path, folder: Path, entries: list[dict[str, Any]], store) -> None:
    """List `entries` (files already in the DVC remote) in `<folder>.dvc`'s directory object, beside what
    `dvc add` hashed: the new `.dir` object is written to the local cache and the remote, the .dvc file points
    at it. `dvc pull <folder>/checkpoints/<arch>` then fetches one architecture, verified by DVC."""
    import hashlib

    import yaml

    from nares.store.ingest import dvc_key

    dvc_file = Path(f"{folder}.dvc")
    spec = yaml.safe_load(dvc_file.read_text())
    out = spec["outs"][0]
    old = out["md5"].removesuffix(".dir")
    cache = repo / ".dvc" / "cache" / "files" / "md5"
    listing = json.loads((cache / old[:2] / f"{old[2:]}.dir").read_text())
    listing = sorted([*listing, *({"md5": e["md5"], "relpath": e["relpath"]} for e in entries)],
                     key=lambda e: e["relpath"])
    data = json.dumps(listing, sort_keys=True).encode()  # DVC's own serialisation of a directory object
    digest = hashlib.md5(data, usedforsecurity=False).hexdigest()
    (cache / digest[:2]).mkdir(parents=True, exist_ok=True)
    (cache / digest[:2] / f"{digest[2:]}.dir").write_bytes(data)
    store.put_bytes(data, dvc_key(store, digest) + ".dir")
    out.update(md5=f"{digest}.dir", size=int(out.get("size", 0)) + sum(int(e["size"]) for e in entries),
               nfiles=len(listing))
    dvc_file.write_text(yaml.safe_dump(spec, sort_keys=False))


def record_in_dvc(repo: Path, folder: Path, settings, *, push: bool = True, checkpoints: list[dict] | None = None,
                  store=None) -> Path:
    """`dvc add` the release folder (writing `<folder>.dvc`) and push it to the `store` remote.

    The remote is pointed (in the untracked `.dvc/config.local`) at the same endpoint and bucket as `settings`.
    Only the embedded server's fixed pair is written there (so that a later plain `dvc pull` works); other
    credentials reach `dvc` through its environment (`dvc_env`); a pair found there that is not to be kept
    (the embedded one, which DVC would prefer to them, or these very credentials) is removed.
    `checkpoints` (`checkpoint_entries`, objects already in the remote) are then listed in the folder's
    directory object under `checkpoints/<arch>/<kind>.pt`, with nothing uploaded but that object (`store`).
    """
    from nares.store.settings import EMBEDDED_KEY_ID, EMBEDDED_SECRET

    rel = os.path.relpath(folder, repo)
    env = dvc_env(settings)
    _dvc(repo, "add", "--quiet", rel, env=env)
    if push:
        current = _dvc_remote(repo)
        if current.get("url") != settings.url("dvc"):
            _dvc(repo, "remote", "modify", "--local", DVC_REMOTE, "url", settings.url("dvc"), env=env)
        if settings.endpoint_url and current.get("endpointurl") != settings.endpoint_url:
            _dvc(
                repo, "remote", "modify", "--local", DVC_REMOTE, "endpointurl", settings.endpoint_url, env=env
            )
        if settings.embedded_credentials and current.get("access_key_id") != settings.access_key_id:
            for key, value in (("access_key_id", EMBEDDED_KEY_ID), ("secret_access_key", EMBEDDED_SECRET)):
                _dvc(repo, "remote", "modify", "--local", DVC_REMOTE, key, value, env=env)
        elif not settings.embedded_credentials:
            local = _dvc_remote(repo, ("config.local",))
            if local.get("access_key_id") in (EMBEDDED_KEY_ID, settings.access_key_id):
                for key in ("access_key_id", "secret_access_key", "session_token"):
                    if key in local:
                        _dvc(repo, "remote", "modify", "--local", "--unset", DVC_REMOTE, key, env=env)
        if _dvc_remote(repo, ("config",)).get("verify") != "true":  # DVC hashes what it pulls (clones too)
            _dvc(repo, "remote", "modify", DVC_REMOTE, "verify", "true", env=env)
        _dvc(repo, "push", "--quiet", "--remote", DVC_REMOTE, f"{rel}.dvc", env=env)
        if checkpoints:
            _add_to_dvc_dir(repo, folder, checkpoints, store)
    return Path(f"{folder}.dvc")


def publish(
    version: str,
    *,
    tables_root: str | Path,
    store=None,
    expected_archs: Iterable[int] | None = None,
    preset: str | None = None,
    verify_checkpoints: str = "full",
    tolerance: float | None = None,
    id_map: str | Path | None = None,
    dest_root: str | Path | None = None,
    dvc_repo: str | Path | None = REPO_ROOT,
    suite: str | None = None,
) -> dict[str, Any]:
    """Validate the tables under `tables_root` and publish them as release `version`; returns RELEASE.json.

    `suite`: the suite the tables were swept with (default: the preset's `eval.suite`, else `nares`); a release of
    the long results table requires its evaluations of every architecture. RELEASE.json and the card name the
    space (and its settings), the data set(s), that suite and every evaluation present with its versions.

    Raises ReleaseRefused (naming the failing expectations) when validation fails, ReleaseError when
    the version exists locally or in the store. `id_map`: an existing release's cifar10.jsonl whose arch ids
    the tables keep (default: ascending MACs). The release folder is recorded in DVC (`dvc add` + `dvc push`)
    when it lies inside `dvc_repo`; `dvc_repo=None` skips that; a DVC failure is reported in `dvc_error`.
    """
    from nares.results.store import RESULTS_TABLE
    from nares.store.objects import ObjectStore
    from nares.store.tables import TABLES, read_tables, tables_lock

    check_version(version)
    id_map = load_id_map(id_map)  # a bad map file is refused before any work
    store = store or ObjectStore.from_settings()
    dest_root = Path(dest_root) if dest_root else releases_root()
    final = dest_root / version
    if final.exists() or Path(f"{final}.dvc").exists():
        raise ReleaseError(f"release {version} already exists at {final}; versions are never overwritten")
    if store.head(_store_key(store, version, RELEASE_FILE)) is not None:
        raise ReleaseError(
            f"release {version} already exists in the object store; versions are never overwritten"
        )
    if not Path(tables_root).is_dir():
        raise ReleaseError(f"tables folder {tables_root} does not exist")
    dest_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=dest_root))
    clock, seconds = time.perf_counter(), {}

    def lap(name: str) -> None:
        nonlocal clock
        seconds[name] = round(time.perf_counter() - clock, 2)
        clock = time.perf_counter()

    try:
        with tables_lock(tables_root):  # a consistent snapshot, even while a sweep keeps ingesting
            for name in (*TABLES, RESULTS_TABLE):  # the wide tables and the long-format results
                if (Path(tables_root) / name).is_dir():
                    shutil.copytree(
                        Path(tables_root) / name,
                        staging / "tables" / name,
                        ignore=shutil.ignore_patterns(".*"),
                    )
        tables = read_tables(staging / "tables")
        lap("snapshot")
        preset = preset or (infer_preset(tables) if tables["architectures"].num_rows else None)
        if preset is None:
            raise ReleaseError("the tables hold no published-layout record: name the preset of this dataset")
        preset, cfg = release_preset(tables, preset)
        suite_info = release_suite(cfg, suite)
        if space_for(cfg).name == "wrn":  # the WRN gate requires the published record, whatever else was evaluated
            from nares.sweep.request import WRN_RECORD_EVALUATIONS

            suite_info["required"] = list(WRN_RECORD_EVALUATIONS)
        present = _evaluations_present(staging / "tables")
        about: dict[str, Any] = {
            "space": space_for(cfg).name, "space_settings": dict(cfg.get("space") or {}),
            "model_scale": cfg["model"]["width_base"], **_coverage(cfg, suite_info, present),
            "corruption_set": corruption_provenance(present),
        }

        def coverage(datasets: list[str]) -> list[str]:
            about["datasets"] = list(datasets)
            return _coverage_lines(about, about["corruption_set"])

        gate = _gate_wrn if space_for(cfg).name == "wrn" else _gate_long
        n, cost, validation, card, arch_of = gate(
            staging, tables, preset, cfg, store=store, expected_archs=expected_archs,
            verify_checkpoints=verify_checkpoints, tolerance=tolerance, id_map=id_map, version=version, lap=lap,
            suite_info=suite_info, coverage=coverage,
        )
        (staging / "DATASET_CARD.md").write_text(card)
        created = validation.pop("created")
        sums = _sums(staging)
        lap("checksums")
        (staging / SUMS_FILE).write_text("".join(f"{h}  {p}\n" for p, h in sums.items()))
        from nares.train.runtime import code_version

        info = {
            "version": version,
            "created_at": created,
            "preset": preset,
            **about,
            "n_archs": n,
            "validation": validation,
            "cost": cost,
            "code_version": code_version(),
            "files": len(sums),
            "bytes": sum((staging / p).stat().st_size for p in sums),
            "sha256sums_sha256": sha256_file(staging / SUMS_FILE),
            "store": store.settings.url("releases", version),
        }
        (staging / RELEASE_FILE).write_text(json.dumps(info, indent=1) + "\n")
        digests = {**sums, SUMS_FILE: info["sha256sums_sha256"]}  # hashed above: not hashed again
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(
                pool.map(
                    lambda rel: store.put_file(
                        staging / rel, key=_store_key(store, version, rel), sha256=digests[rel]
                    ),
                    digests,
                )
            )
        store.put_file(
            staging / RELEASE_FILE, key=_store_key(store, version, RELEASE_FILE)
        )  # last: makes it visible
        lap("upload")
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if dvc_repo is not None and final.resolve().is_relative_to(Path(dvc_repo).resolve()):
        try:
            entries = checkpoint_entries(store, tables, arch_of)
            lap("dvc_checkpoints")
            info["dvc_file"] = str(record_in_dvc(Path(dvc_repo), final, store.settings, checkpoints=entries,
                                                 store=store))
            info["dvc_checkpoints"] = len(entries)
        except ReleaseError as e:  # the release itself is published; DVC can be caught up by hand
            info["dvc_error"] = f"{e} (record it later: dvc add {final} && dvc push)"
        lap("dvc")
    info["path"] = str(final)
    info["seconds"] = seconds
    return info


def _verify_folder(folder: Path, known: dict[Path, str] | None = None) -> None:
    """Check SHA256SUMS against RELEASE.json and every file against SHA256SUMS; `known` gives the sha256 of
    files just downloaded (by resolved path), which are then not hashed again."""
    known = known or {}

    def sha(path: Path) -> str:
        return known.get(path.resolve()) or sha256_file(path)

    info = json.loads((folder / RELEASE_FILE).read_text())
    if sha(folder / SUMS_FILE) != info["sha256sums_sha256"]:
        raise ReleaseError(f"{folder / SUMS_FILE} does not match the checksum in {RELEASE_FILE}")
    for line in (folder / SUMS_FILE).read_text().splitlines():
        digest, rel = line.split("  ", 1)
        path = folder / rel
        if not path.is_file() or sha(path) != digest:
            raise ReleaseError(f"release file {path} is missing or does not match {SUMS_FILE}")


def fetch_release(version: str, dest: str | Path | None = None, *, store=None) -> Path:
    """A local folder holding release `version`, every file checked against SHA256SUMS.

    Uses the local copy (`releases/<version>`, or `dest`) when complete, else downloads it from the store.
    """
    from nares.store.objects import ObjectStore

    check_version(version)
    folder = Path(dest) if dest else releases_root() / version
    if (folder / RELEASE_FILE).is_file():
        _verify_folder(folder)
        return folder
    store = store or ObjectStore.from_settings()
    prefix = _store_key(store, version) + "/"
    keys = store.list_keys(prefix)
    if prefix + RELEASE_FILE not in keys:
        raise ReleaseError(f"release {version} is not in the object store ({store.settings.url('releases')})")
    tmp = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=folder.parent if folder.parent.exists() else None))
    try:
        known: dict[Path, str] = {}
        for key in keys:
            path = tmp / key[len(prefix) :]
            known[path.resolve()] = store.download(key, path)  # checked against the recorded sha256
        _verify_folder(tmp, known)
        folder.parent.mkdir(parents=True, exist_ok=True)
        if folder.exists():
            shutil.rmtree(folder)
        shutil.move(str(tmp), folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def list_releases(*, store=None, local_root: str | Path | None = None) -> list[dict[str, Any]]:
    """Every release version (object store and local folders) with its validation result and checksums.

    A store that cannot be listed raises its `StoreError` (naming the endpoint): never an empty answer."""
    from nares.store.objects import ObjectStore

    found: dict[str, dict[str, Any]] = {}
    root = Path(local_root) if local_root else releases_root()
    for path in sorted(root.glob(f"*/{RELEASE_FILE}")):
        info = json.loads(path.read_text())
        found[info["version"]] = {**info, "where": ["local"]}
    store = store or ObjectStore.from_settings()
    prefix = _store_key(store, "") + "/"
    for key in store.list_keys(prefix):
        if key.endswith("/" + RELEASE_FILE) and key.count("/") == prefix.count("/") + 1:
            info = json.loads(store.get_bytes(key))
            entry = found.setdefault(info["version"], {**info, "where": []})
            entry["where"].append("store")
    out = []
    for v in sorted(found, key=lambda v: found[v]["created_at"]):
        e = found[v]
        out.append(
            {
                "version": v,
                "created_at": e["created_at"],
                "preset": e.get("preset"),
                "n_archs": e.get("n_archs"),
                "validation": "passed" if e["validation"]["success"] else "failed",
                "n_expectations": e["validation"]["n_expectations"],
                "sha256sums_sha256": e["sha256sums_sha256"],
                "files": e.get("files"),
                "bytes": e.get("bytes"),
                "where": e["where"],
                "store": e.get("store"),
            }
        )
    return out
