"""Jung et al.'s robustness-dataset layout (PROTOCOL §7.2) ⇄ the long-format results table.

The published layout (ICLR 2023 "Neural Architecture Design and Robustness: A Dataset"; read from the helper
class `robustness_dataset.py` and `dataset.ipynb` of github.com/steffen-jung/robustness-dataset):

    meta.json                       {"ids": {"<id>": {"nb201-string": "|…|", "isomorph": "<id>"}, …},
                                     "epsilons": {"<key>": [ε, …]}}       ε in 1/255 units, floats (1.0, 255.0)
    <dataset>/<key>_<measure>.json  {"<dataset>": {"<key>": {"<measure>": {"<id>": value, …}}}}

ids are NAS-Bench-201's 0-based indices as strings ("0" … "15624"); `isomorph` names the evaluated member of
the cell's isomorphism class, and every result file is keyed by those representative ids only (a cell is read
through `meta["ids"][id]["isomorph"]`). Keys: `clean`, `fgsm@Linf`, `pgd@Linf`, `aa_apgd-ce@Linf`,
`aa_square@Linf` and the 15 corruption names. Measures: `accuracy`, `confidence`, `cm`. A value is one cell's
for `clean`, a list over `meta["epsilons"][key]` (same order) for an attack, a list over severities 1…5 for a
corruption. Accuracies are fractions in [0, 1].

One cell's values, as written here: accuracy a number; cm the C×C count matrix (rows = true class, columns =
predicted, integers); confidence `{"by_true": C×C, "by_predicted": C×C, "correct_incorrect": [c, i]}` (mean
softmax by true class, by predicted class, mean max-softmax of the correct and of the incorrect predictions;
null where no point was counted). The published helper reads the files and the nesting down to the id; the
names inside a confidence value are not visible there and are this module's (`CONFIDENCE_PARTS`).

Long table side: `confusion` (clean), `fgsm_eps`, `pgd_eps`, `apgd_eps`, `square_eps` (keys "<ε>" and
"<ε>/<true>/<pred>") and `corruptions_cm` ("<corruption>/<severity>", "<corruption>/<severity>/<true>/<pred>"),
metrics acc (percent), cm, conf_true, conf_pred, conf_correct, conf_incorrect, at checkpoint "best". Other
evaluations, the loss and corruptions outside Jung's 15 are not part of the layout and are left out.

Units. A published fraction f is stored as the percentage whose decimal form is f's shifted by two places (0.893
→ 89.3), else the nearest float within a few ulps that shifts back to f; export shifts back. When the table holds
the cell's confusion matrix and its correct/total is the stored accuracy (as every evaluation of this factory
writes it), correct/total is written: the fraction the evaluation computed, bit for bit. So export → import →
export is byte-identical, and import → export gives back every published accuracy of ≤ 15 significant digits
(k/10,000 of CIFAR always; any value with its confusion matrix); `JungImport.inexact` counts the others.

Ids: by default this factory's own order (0-based: arch_id − 1, ascending MACs; representative = the class's
cheapest member); `JungIds.from_meta(meta.json)` gives NB201's index order and Jung's representatives.

Imports the results schema and store layout, records and spaces; must not import the store, the evaluator,
Prefect, Ray or the app.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from nares.errors import ArchError, DataError, shown
from nares.io import atomic_write
from nares.records import pct_from_fraction
from nares.results.build import LongBuilder, concat
from nares.results.schema import MATRIX_METRICS
from nares.results.store import SHARD_ARCHS, shard_path
from nares.spaces.nb201 import N_CELLS, SPACE, Cell, read_meta_ids

SPACE_NAME = "nb201"
CHECKPOINT = "best"
CLEAN_EVALUATION, CLEAN_KEY = "confusion", "clean"
SPECTRA: dict[str, str] = {"fgsm_eps": "fgsm@Linf", "pgd_eps": "pgd@Linf", "apgd_eps": "aa_apgd-ce@Linf",
                           "square_eps": "aa_square@Linf"}
CORRUPTION_EVALUATION = "corruptions_cm"
CORRUPTIONS: tuple[str, ...] = (  # Jung et al.'s 15 of CIFAR-10-C's 19, in their helper's order
    "brightness", "contrast", "defocus_blur", "elastic_transform", "fog", "frost", "gaussian_noise", "glass_blur",
    "impulse_noise", "jpeg_compression", "motion_blur", "pixelate", "shot_noise", "snow", "zoom_blur")
MEASURES: tuple[str, ...] = ("accuracy", "confidence", "cm")
CONFIDENCE_PARTS: tuple[str, ...] = ("by_true", "by_predicted", "correct_incorrect")
CONF_METRICS: tuple[str, ...] = ("conf_true", "conf_pred", "conf_correct", "conf_incorrect")
METRICS: tuple[str, ...] = ("acc", "cm", *CONF_METRICS)
EVALUATION_OF_KEY: dict[str, str] = {CLEAN_KEY: CLEAN_EVALUATION, **{v: k for k, v in SPECTRA.items()},
                                     **{c: CORRUPTION_EVALUATION for c in CORRUPTIONS}}
COMPLEXITY_DATASET = "cifar10"  # the closed-form params/MACs are those of NB201's 10-class 32×32 network
SCALE = 16  # NAS-Bench-201's CIFAR network (C = 16, 5 cells per stage): the networks Jung et al. evaluated
ULP_SEARCH = 4


class JungError(DataError):
    """A file set that does not follow the layout, or a table that cannot be written in it (one line)."""


# ---------------------------------------------------------------- units


def _shift(x: float, places: int) -> float:
    return float(Decimal(repr(float(x))).scaleb(places))


def percent_of(fraction: float) -> float:
    """The percentage stored for a published fraction: its decimal form shifted by two places when that shifts
    back to the same float, else the nearest float within `ULP_SEARCH` ulps that does, else `pct_from_fraction`."""
    f = float(fraction)
    if not math.isfinite(f):
        return f
    p = _shift(f, 2)
    if _shift(p, -2) == f:
        return p
    lo = hi = p
    for _ in range(ULP_SEARCH):
        hi, lo = math.nextafter(hi, math.inf), math.nextafter(lo, -math.inf)
        for c in (hi, lo):
            if _shift(c, -2) == f:
                return c
    return float(pct_from_fraction(f))


def fraction_of(percent: float, counted: float | None = None) -> float:
    """The published fraction of a stored percentage: `counted` (correct/total of the cell's confusion matrix)
    when the percentage is that fraction's (as an evaluation or an import stores it), else the decimal shift."""
    p = float(percent)
    if counted is not None and math.isfinite(counted) and (float(pct_from_fraction(counted)) == p
                                                           or percent_of(counted) == p):
        return float(counted)
    return _shift(p, -2) if math.isfinite(p) else p


# ---------------------------------------------------------------- ids


@dataclass(frozen=True)
class JungIds:
    """An id convention: the 0-based id of each of the 15,625 cells and the id of its class's representative."""

    cells: tuple[Cell, ...]
    isomorph: tuple[int, ...]
    source: str
    _ids: dict[Cell, int] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._ids.update({c: i for i, c in enumerate(self.cells)})

    @classmethod
    def default(cls) -> JungIds:
        """This factory's ids (arch_id − 1: ascending MACs) and representatives (each class's cheapest member)."""
        index = SPACE.index()
        cells = tuple(c for _, c in index)
        return cls(cells, tuple(index.id_of(SPACE.canonical(c)) - 1 for c in cells),
                   "the factory's default ids (arch_id - 1)")

    @classmethod
    def from_meta(cls, path: str | Path) -> JungIds:
        """NB201's index order and Jung's representatives from a `meta.json` (checked by `read_meta_ids`)."""
        by_id = read_meta_ids(SPACE, path)  # one ArchError line when the ids or classes are wrong
        ids = _load(Path(path), "meta.json")["ids"]
        cells = tuple(by_id[i + 1] for i in range(N_CELLS))
        return cls(cells, tuple(int(ids[str(i)]["isomorph"]) for i in range(N_CELLS)), f"{Path(path).name} (NB201 order)")

    def id_of(self, cell: Any) -> int:
        return self._ids[SPACE.parse(cell)]

    def representative(self, cell: Any) -> int:
        """The id the results of `cell`'s class are published under."""
        return self.isomorph[self.id_of(cell)]

    def meta_ids(self) -> dict[str, dict[str, str]]:
        return {str(i): {"nb201-string": str(c), "isomorph": str(r)}
                for i, (c, r) in enumerate(zip(self.cells, self.isomorph, strict=True))}


# ---------------------------------------------------------------- export


def _codes(table: pa.Table, column: str) -> tuple[np.ndarray, list[Any]]:
    col = table.column(column).combine_chunks()
    if not pa.types.is_dictionary(col.type):
        col = col.dictionary_encode()
    return col.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64), col.dictionary.to_pylist()


def _mask(idx: np.ndarray, words: list[Any], wanted: Sequence[str]) -> np.ndarray:
    keep = np.array([w in wanted for w in words] + [False], dtype=bool)  # index -1 (null) → False
    return keep[idx]


@dataclass
class _Rows:
    """The rows of one (dataset, evaluation) at one checkpoint, decoded."""

    arch: np.ndarray  # position in `archs`
    metric: np.ndarray  # metric word
    cell: np.ndarray  # cell word ("8", "fog/3", "")
    i: np.ndarray  # matrix row (−1 for scalars)
    j: np.ndarray
    value: np.ndarray


def _split_keys(words: list[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(cell, i, j) of each key word; scalars (no trailing "/<int>/<int>") get i = j = −1."""
    cells, ii, jj = [], [], []
    for w in words:
        parts = (w or "").split("/")
        if len(parts) >= 2 and parts[-1].isdigit() and parts[-2].isdigit():
            cells.append("/".join(parts[:-2]))
            ii.append(int(parts[-2]))
            jj.append(int(parts[-1]))
        else:
            cells.append(w or "")
            ii.append(-1)
            jj.append(-1)
    return cells, np.array(ii, dtype=np.int64), np.array(jj, dtype=np.int64)


class _Exporter:
    def __init__(self, table: pa.Table, ids: JungIds, checkpoint: str):
        sp, sp_w = _codes(table, "space")
        ck, ck_w = _codes(table, "checkpoint")
        ev, ev_w = _codes(table, "evaluation")
        wanted = [CLEAN_EVALUATION, *SPECTRA, CORRUPTION_EVALUATION]
        keep = _mask(sp, sp_w, [SPACE_NAME]) & _mask(ck, ck_w, [checkpoint]) & _mask(ev, ev_w, wanted)
        me, me_w = _codes(table, "metric")
        keep &= _mask(me, me_w, METRICS)
        t = table.filter(pa.array(keep))
        if t.num_rows == 0:
            raise JungError(f"the table holds no {SPACE_NAME} result of {', '.join(wanted)} at checkpoint "
                            f"{checkpoint!r}: nothing to export")
        self.ids = ids
        ar, ar_w = _codes(t, "arch")
        self.published: list[int] = []  # per arch word: its published (representative) id
        seen: dict[int, str] = {}
        for w in ar_w:
            try:
                rep = ids.representative(w)
            except (ArchError, KeyError):
                raise JungError(f"arch {shown(w)} is not an NB201 cell") from None
            if rep in seen and seen[rep] != w:
                raise JungError(f"archs {seen[rep]} and {w} are isomorphic (both published as id {rep}): "
                                "keep one per class")
            seen[rep] = w
            self.published.append(rep)
        self.arch_words = ar_w
        self.ds, self.ds_w = _codes(t, "dataset")
        self.ev, self.ev_w = _codes(t, "evaluation")
        self.ar = ar
        me, self.me_w = _codes(t, "metric")
        self.me = me
        ky, ky_w = _codes(t, "key")
        cells, ii, jj = _split_keys(ky_w)
        self.key_cell = np.array([*cells, ""], dtype=object)
        self.key_i, self.key_j = np.r_[ii, -1], np.r_[jj, -1]
        self.ky = ky
        self.value = t.column("value").to_numpy(zero_copy_only=False).astype(np.float64)

    def datasets(self) -> list[str]:
        return sorted({self.ds_w[d] for d in np.unique(self.ds) if d >= 0})

    def rows(self, dataset: str, evaluation: str) -> _Rows | None:
        m = _mask(self.ds, self.ds_w, [dataset]) & _mask(self.ev, self.ev_w, [evaluation])
        if not m.any():
            return None
        k = self.ky[m]
        return _Rows(self.ar[m], np.array(self.me_w, dtype=object)[self.me[m]], self.key_cell[k], self.key_i[k],
                     self.key_j[k], self.value[m])


def _grid(rows: _Rows, evaluation: str) -> dict[str, list[str]]:
    """{Jung key: its cells in published order} of one evaluation's rows (from the accuracy keys)."""
    acc = rows.metric == "acc"
    cells = sorted(set(rows.cell[acc].tolist()) | set(rows.cell[rows.i >= 0].tolist()))
    if evaluation == CLEAN_EVALUATION:
        return {CLEAN_KEY: [""]} if cells == [""] else _bad_cells(evaluation, cells, "no key")
    if evaluation in SPECTRA:
        try:
            return {SPECTRA[evaluation]: sorted(cells, key=float)}
        except ValueError:
            return _bad_cells(evaluation, cells, "ε keys")
    out: dict[str, list[str]] = {}
    for c in cells:
        name, _, sev = c.partition("/")
        if not sev.isdigit():
            _bad_cells(evaluation, [c], "<corruption>/<severity> keys")
        if name in CORRUPTIONS:
            out.setdefault(name, []).append(c)
    return {k: sorted(v, key=lambda c: int(c.partition("/")[2])) for k, v in out.items()}


def _bad_cells(evaluation: str, cells: list[str], expected: str) -> Any:
    raise JungError(f"{evaluation}: keys {shown(cells[:3])} are not {expected}")


@dataclass
class _Block:
    """Dense values of one (dataset, Jung key): per metric, a (archs, cells[, C, C]) array and the archs it holds."""

    archs: np.ndarray  # arch positions (ascending published id)
    names: list[str]  # their arch strings
    cells: list[str]
    values: dict[str, np.ndarray]


def _block(ex: _Exporter, rows: _Rows, dataset: str, evaluation: str, key: str, cells: list[str]) -> _Block | None:
    pos = {c: n for n, c in enumerate(cells)}
    in_key = np.array([c in pos for c in rows.cell], dtype=bool)
    if not in_key.any():
        return None
    r = _Rows(rows.arch[in_key], rows.metric[in_key], rows.cell[in_key], rows.i[in_key], rows.j[in_key],
              rows.value[in_key])
    cell_pos = np.array([pos[c] for c in r.cell], dtype=np.int64)
    archs = np.unique(r.arch)
    archs = archs[np.argsort([ex.published[a] for a in archs], kind="stable")]
    arch_pos = np.full(len(ex.arch_words), -1, dtype=np.int64)
    arch_pos[archs] = np.arange(len(archs))
    mat = r.i >= 0
    c = int(max(r.i[mat].max(), r.j[mat].max())) + 1 if mat.any() else 0
    values: dict[str, np.ndarray] = {}
    where = f"{dataset}/{evaluation} ({key})"
    for metric in METRICS:
        sel = (r.metric == metric) & (mat if metric in MATRIX_METRICS else ~mat)
        if not sel.any():
            continue
        shape: tuple[int, ...] = (len(archs), len(cells)) + ((c, c) if metric in MATRIX_METRICS else ())
        index = (arch_pos[r.arch[sel]], cell_pos[sel]) + ((r.i[sel], r.j[sel]) if metric in MATRIX_METRICS else ())
        count = np.zeros(shape, dtype=np.int64)
        np.add.at(count, index, 1)
        held = count.reshape(len(archs), -1).any(axis=1)
        dup = np.argwhere(count > 1)
        if len(dup):
            raise JungError(f"{where}: {metric} of arch {ex.arch_words[archs[dup[0][0]]]} at "
                            f"{cells[dup[0][1]] or 'the clean cell'} appears more than once (one version only)")
        gap = np.argwhere((count == 0) & held.reshape((-1,) + (1,) * (len(shape) - 1)))
        if len(gap):
            a, cell = ex.arch_words[archs[gap[0][0]]], cells[gap[0][1]] or "the clean cell"
            raise JungError(f"{where}: arch {a} has no {metric} at {cell}"
                            + (f" [{gap[0][2]}, {gap[0][3]}]" if len(gap[0]) > 2 else "")
                            + f" (every architecture needs the whole grid {cells if cells != [''] else ''})")
        arr = np.full(shape, np.nan)
        arr[index] = r.value[sel]
        values[metric] = arr
        values[f"{metric}:held"] = held
    return _Block(archs, [ex.arch_words[a] for a in archs], cells, values)


def _clean(v: float) -> float | None:
    return None if math.isnan(v) else float(v)


def _matrix(m: np.ndarray, ints: bool = False) -> list[list[Any]]:
    if ints:
        if np.isnan(m).any() or (m != np.round(m)).any() or (m < 0).any():
            raise JungError(f"a confusion matrix holds a value that is not a count: {shown(m.tolist())}")
        return m.astype(np.int64).tolist()
    return [[_clean(v) for v in row] for row in m.tolist()]


def _measure_values(block: _Block, measure: str, key: str) -> Iterator[tuple[int, Any]]:
    """(arch position in block, the value of `measure` over the block's cells) for each arch holding it."""
    v = block.values
    if measure == "accuracy":
        if "acc" not in v:
            return
        counted = None
        if "cm" in v:
            cm = v["cm"]
            n = cm.sum(axis=(2, 3))
            counted = np.trace(cm, axis1=2, axis2=3) / np.where(n > 0, n, np.nan)
        for a in np.flatnonzero(v["acc:held"]):
            bad = np.flatnonzero(~np.isfinite(v["acc"][a]))
            if len(bad):
                raise JungError(f"{key}: arch {block.names[a]} has accuracy {v['acc'][a][bad[0]]} at "
                                f"{block.cells[bad[0]] or 'the clean cell'}; the layout holds fractions in [0, 1]")
            cm_held = counted is not None and v["cm:held"][a]
            yield a, [fraction_of(p, float(counted[a, k]) if cm_held else None) for k, p in enumerate(v["acc"][a])]
    elif measure == "cm":
        if "cm" not in v:
            return
        for a in np.flatnonzero(v["cm:held"]):
            yield a, [_matrix(m, ints=True) for m in v["cm"][a]]
    else:
        present = [m for m in CONF_METRICS if m in v]
        if not present:
            return
        held = np.zeros(len(block.archs), dtype=bool)
        for m in present:
            held |= v[f"{m}:held"]
        for a in np.flatnonzero(held):
            missing = [m for m in CONF_METRICS if m not in v or not v[f"{m}:held"][a]]
            if missing:
                raise JungError(f"{key}: arch {block.names[a]} has {', '.join(sorted(set(CONF_METRICS) - set(missing)))} "
                                f"but not {', '.join(missing)} (a confidence value needs all four)")
            yield a, [{"by_true": _matrix(v["conf_true"][a, k]), "by_predicted": _matrix(v["conf_pred"][a, k]),
                       "correct_incorrect": [_clean(v["conf_correct"][a, k]), _clean(v["conf_incorrect"][a, k])]}
                      for k in range(len(block.cells))]


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def _write_file(path: Path, dataset: str, key: str, measure: str, items: Iterator[tuple[int, Any]]) -> int:
    n = 0
    with atomic_write(path, "w") as fh:
        fh.write(f"{{{_dumps(dataset)}:{{{_dumps(key)}:{{{_dumps(measure)}:{{")
        for pid, value in items:
            fh.write(("," if n else "") + f"{_dumps(str(pid))}:{_dumps(value)}")
            n += 1
        fh.write("}}}}\n")
    return n


def write_jung(table: pa.Table, out: str | Path, *, ids: JungIds | None = None, checkpoint: str = CHECKPOINT
               ) -> dict[str, Any]:
    """Write the Jung et al. layout of `table`'s NB201 rows at `checkpoint` under `out` (meta.json and one folder
    per dataset); returns a summary {datasets, files, architectures, epsilons, left_out}."""
    ids = ids or JungIds.default()
    ex = _Exporter(table, ids, checkpoint)
    out = Path(out)
    epsilons: dict[str, list[float]] = {}
    severities: dict[str, list[int]] = {}
    files: list[str] = []
    left_out: set[str] = set()
    archs: set[int] = set()
    for dataset in ex.datasets():
        for evaluation in (CLEAN_EVALUATION, *SPECTRA, CORRUPTION_EVALUATION):
            rows = ex.rows(dataset, evaluation)
            if rows is None:
                continue
            if evaluation == CORRUPTION_EVALUATION:
                left_out |= {c.partition("/")[0] for c in set(rows.cell.tolist())} - set(CORRUPTIONS)
            for key, cells in _grid(rows, evaluation).items():
                block = _block(ex, rows, dataset, evaluation, key, cells)
                if block is None:
                    continue
                _note_grid(key, evaluation, cells, epsilons, severities)
                folder = out / dataset
                folder.mkdir(parents=True, exist_ok=True)
                for measure in MEASURES:
                    items = list(_measure_values(block, measure, key))
                    if not items:
                        continue
                    scalar = key == CLEAN_KEY
                    _write_file(folder / f"{key}_{measure}.json", dataset, key, measure,
                                ((ex.published[block.archs[a]], v[0] if scalar else v) for a, v in items))
                    files.append(f"{dataset}/{key}_{measure}.json")
                    archs |= {ex.published[block.archs[a]] for a, _ in items}
    if not files:
        raise JungError(f"the table holds no accuracy, cm or confidence of {CLEAN_EVALUATION}, {', '.join(SPECTRA)} "
                        f"or {CORRUPTION_EVALUATION} for {SPACE_NAME}: nothing to export")
    meta: dict[str, Any] = {"ids": ids.meta_ids(), "epsilons": {k: [float(e) for e in v] for k, v in epsilons.items()}}
    odd = {k: v for k, v in severities.items() if v != list(range(1, len(v) + 1))}
    if odd:  # not part of the published meta: only when a corruption's severities are not 1…n
        meta["severities"] = odd
    with atomic_write(out / "meta.json", "w") as fh:
        fh.write(_dumps(meta) + "\n")
    return {"datasets": ex.datasets(), "files": sorted(files), "architectures": len(archs), "ids": ids.source,
            "epsilons": meta["epsilons"], "left_out": sorted(left_out)}


def _note_grid(key: str, evaluation: str, cells: list[str], epsilons: dict[str, list[float]],
               severities: dict[str, list[int]]) -> None:
    if evaluation in SPECTRA:
        grid = [float(c) for c in cells]
        if epsilons.setdefault(key, grid) != grid:
            raise JungError(f"{key}: the datasets hold different ε grids ({epsilons[key]} and {grid}); meta.json "
                            "has one per key")
    elif evaluation == CORRUPTION_EVALUATION:
        sev = [int(c.partition("/")[2]) for c in cells]
        if severities.setdefault(key, sev) != sev:
            raise JungError(f"{key}: the datasets hold different severities ({severities[key]} and {sev})")


# ---------------------------------------------------------------- import


@dataclass
class JungImport:
    """The long table of a published file set, its ids, and the accuracies an export would not give back bit for
    bit (percentages cannot hold every fraction: see the module docstring)."""

    table: pa.Table
    ids: JungIds
    datasets: list[str]
    files: list[str]
    inexact: int = 0
    first_inexact: str | None = None


def _load(path: Path, rel: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise JungError(f"{rel}: cannot be read ({e.strerror or e})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise JungError(f"{rel}: not JSON ({e})") from None


def _number(v: Any, where: str, *, nullable: bool = False) -> float:
    if v is None and nullable:
        return math.nan
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise JungError(f"{where}: {shown(v)} is not a finite number")
    return float(v)


def _read_meta(folder: Path) -> tuple[JungIds, dict[str, list[str]], dict[str, list[int]]]:
    path = folder / "meta.json"
    if not path.is_file():
        raise JungError(f"{folder}: no meta.json (the ids and ε lists of the layout)")
    meta = _load(path, "meta.json")
    if not isinstance(meta, dict) or not isinstance(meta.get("epsilons"), dict):
        raise JungError("meta.json: needs 'ids' and 'epsilons' objects")
    try:
        ids = JungIds.from_meta(path)
    except ArchError as e:
        raise JungError(str(e)) from None
    eps: dict[str, list[str]] = {}
    for key, values in meta["epsilons"].items():
        if not isinstance(values, list) or not values:
            raise JungError(f"meta.json: epsilons[{key!r}] is {shown(values)}; expected a list of ε (1/255 units)")
        grid = [_number(e, f"meta.json: epsilons[{key!r}]") for e in values]
        if any(e <= 0 for e in grid) or grid != sorted(set(grid)):
            raise JungError(f"meta.json: epsilons[{key!r}] = {shown(values)} is not increasing positive ε")
        eps[key] = [_eps_key(e) for e in grid]
    sev: dict[str, list[int]] = {}
    for key, values in (meta.get("severities") or {}).items():
        if not isinstance(values, list) or not values or not all(type(s) is int and 1 <= s <= 5 for s in values) \
                or values != sorted(set(values)):
            raise JungError(f"meta.json: severities[{key!r}] = {shown(values)} is not increasing severities in 1..5")
        sev[key] = values
    return ids, eps, sev


def _eps_key(eps: float) -> str:
    """The long table's key of an ε (`nares.evaluations.spectra.eps_key`: "8", "0.5")."""
    return f"{eps:g}" if float(f"{eps:g}") == eps else repr(float(eps))


def _body(obj: Any, rel: str, dataset: str, key: str, measure: str) -> dict[str, Any]:
    """obj[dataset][key][measure], each level checked to be the only entry."""
    for level, name in (("dataset", dataset), ("key", key), ("measure", measure)):
        if not isinstance(obj, dict) or list(obj) != [name]:
            found = list(obj)[:3] if isinstance(obj, dict) else type(obj).__name__
            raise JungError(f"{rel}: expected the {level} {name!r} as the only entry at this level, found "
                            f"{shown(found)}")
        obj = obj[name]
    if not isinstance(obj, dict) or not obj:
        raise JungError(f"{rel}: {dataset} → {key} → {measure} must map architecture ids to values")
    return obj


def _matrix_in(v: Any, where: str, c: int | None, *, counts: bool) -> np.ndarray:
    if not isinstance(v, list) or not v or not all(isinstance(r, list) and len(r) == len(v) for r in v):
        raise JungError(f"{where}: {shown(v)} is not a square matrix")
    if c is not None and len(v) != c:
        raise JungError(f"{where}: a {len(v)}×{len(v)} matrix, the others are {c}×{c}")
    if counts:
        bad = next((x for r in v for x in r if type(x) is not int or x < 0), None)
        if bad is not None or any(type(x) is not int for r in v for x in r):
            raise JungError(f"{where}: {shown(bad)} is not a count (non-negative integer)")
        return np.array(v, dtype=np.float64)
    return np.array([[_number(x, where, nullable=True) for x in r] for r in v], dtype=np.float64)


class _Importer:
    def __init__(self, ids: JungIds, eps: dict[str, list[str]], sev: dict[str, list[int]]):
        self.ids, self.eps, self.sev = ids, eps, sev
        self.b = LongBuilder()
        self.inexact = 0
        self.first_inexact: str | None = None
        self.c: dict[str, int] = {}

    def cells(self, key: str, n: int | None, rel: str) -> list[str]:
        if key == CLEAN_KEY:
            return [""]
        if key in SPECTRA.values():
            if key not in self.eps:
                raise JungError(f"{rel}: meta.json has no epsilons[{key!r}]")
            return self.eps[key]
        sev = self.sev.get(key) or list(range(1, (n or 0) + 1))
        if not 1 <= len(sev) <= 5:
            raise JungError(f"{rel}: {n} severities; a corruption has 1 to 5")
        return [f"{key}/{s}" for s in sev]

    def arch_id(self, pid: str, rel: str) -> tuple[int, str]:
        if not (isinstance(pid, str) and pid.isdigit() and int(pid) < N_CELLS and str(int(pid)) == pid):
            raise JungError(f"{rel}: id {shown(pid)} is not an NB201 index 0..{N_CELLS - 1}")
        i = int(pid)
        if self.ids.isomorph[i] != i:
            raise JungError(f"{rel}: id {pid} is not a representative (meta.json: isomorph {self.ids.isomorph[i]}); "
                            "results are published under representative ids only")
        return i + 1, str(self.ids.cells[i])

    def per_cell(self, value: Any, cells: list[str], where: str) -> list[Any]:
        if cells == [""]:
            return [value]
        if not isinstance(value, list) or len(value) != len(cells):
            n = len(value) if isinstance(value, list) else shown(value)
            raise JungError(f"{where}: {n} values, expected {len(cells)} (one per "
                            f"{'ε of meta.json epsilons' if '/' not in cells[0] else 'severity'})")
        return value

    def add_key(self, dataset: str, key: str, paths: dict[str, Path], rel_of: dict[str, str]) -> None:
        evaluation = EVALUATION_OF_KEY[key]
        bodies = {m: _body(_load(p, rel_of[m]), rel_of[m], dataset, key, m) for m, p in paths.items()}
        n = None
        if key in CORRUPTIONS:  # the severity count, from the first value of any measure
            first = next(iter(next(iter(bodies.values())).values()))
            n = len(first) if isinstance(first, list) else None
        counted: dict[str, list[float | None]] = {}
        for measure in ("cm", "accuracy", "confidence"):  # cm first: it gives each accuracy's correct/total
            if measure not in bodies:
                continue
            rel = rel_of[measure]
            cells = self.cells(key, n, rel)
            keys = [f"{c}" for c in cells]
            for pid, value in bodies[measure].items():
                aid, arch = self.arch_id(pid, rel)
                where = f"{rel}: id {pid}"
                per = self.per_cell(value, cells, where)
                base = {"dataset": dataset, "space": SPACE_NAME, "arch_id": aid, "arch": arch,
                        "checkpoint": CHECKPOINT, "evaluation": evaluation}
                if measure == "cm":
                    ms = [_matrix_in(v, f"{where} [{k or 'clean'}]", self.c.get(dataset), counts=True)
                          for k, v in zip(keys, per, strict=True)]
                    self.c.setdefault(dataset, len(ms[0]))
                    self._matrices(base, "cm", keys, ms)
                    counted[pid] = [float(np.trace(m) / m.sum()) if m.sum() > 0 else None for m in ms]
                elif measure == "accuracy":
                    fr = [_number(v, f"{where} [{k or 'clean'}]") for k, v in zip(keys, per, strict=True)]
                    bad = next((f for f in fr if not 0 <= f <= 1), None)
                    if bad is not None:
                        raise JungError(f"{where}: accuracy {bad!r} is outside [0, 1] (fractions)")
                    pct = [percent_of(f) for f in fr]
                    got = counted.get(pid) or [None] * len(fr)
                    for k, f, p, q in zip(keys, fr, pct, got, strict=True):
                        if fraction_of(p, q) != f:
                            self.inexact += 1
                            self.first_inexact = self.first_inexact or f"{rel}: id {pid} [{k or 'clean'}] = {f!r}"
                    self.b.add(len(pct), pct, metric="acc", key=keys, **base)
                else:
                    self._confidence(base, keys, per, where, dataset)

    def _matrices(self, base: dict[str, Any], metric: str, keys: list[str], ms: list[np.ndarray]) -> None:
        c = len(ms[0])
        sub = [f"{i}/{j}" for i in range(c) for j in range(c)]
        words = [f"{k}/{s}" if k else s for k in keys for s in sub]
        self.b.add(len(words), np.concatenate([m.ravel() for m in ms]), metric=metric, key=self.b.codes("key", words),
                   **base)

    def _confidence(self, base: dict[str, Any], keys: list[str], per: list[Any], where: str, dataset: str) -> None:
        trues, preds, pairs = [], [], []
        for k, v in zip(keys, per, strict=True):
            w = f"{where} [{k or 'clean'}]"
            if not isinstance(v, dict) or sorted(v) != sorted(CONFIDENCE_PARTS):
                raise JungError(f"{w}: a confidence value is {{{', '.join(CONFIDENCE_PARTS)}}}, got "
                                f"{shown(sorted(v) if isinstance(v, dict) else v)}")
            c = self.c.get(dataset)
            trues.append(_matrix_in(v["by_true"], f"{w} by_true", c, counts=False))
            preds.append(_matrix_in(v["by_predicted"], f"{w} by_predicted", len(trues[-1]), counts=False))
            self.c.setdefault(dataset, len(trues[-1]))
            pair = v["correct_incorrect"]
            if not isinstance(pair, list) or len(pair) != 2:
                raise JungError(f"{w}: correct_incorrect is {shown(pair)}; expected [correct, incorrect]")
            pairs.append([_number(x, f"{w} correct_incorrect", nullable=True) for x in pair])
        self._matrices(base, "conf_true", keys, trues)
        self._matrices(base, "conf_pred", keys, preds)
        arr = np.array(pairs, dtype=np.float64)
        self.b.add(len(keys), arr[:, 0], metric="conf_correct", key=keys, **base)
        self.b.add(len(keys), arr[:, 1], metric="conf_incorrect", key=keys, **base)


def read_jung(folder: str | Path) -> JungImport:
    """The long table of a published file set (meta.json and `<dataset>/<key>_<measure>.json`): every value the
    layout holds, at checkpoint "best", plus each imported cifar10 cell's exact params/MACs (`complexity`, NB201's
    C = 16 network). A malformed file is one JungError line naming the file, id and value."""
    folder = Path(folder)
    if not folder.is_dir():
        raise JungError(f"{folder} is not a folder")
    ids, eps, sev = _read_meta(folder)
    imp = _Importer(ids, eps, sev)
    datasets, files = [], []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        groups: dict[str, dict[str, Path]] = {}
        for path in sorted(sub.glob("*.json")):
            key, _, measure = path.stem.rpartition("_")
            rel = f"{sub.name}/{path.name}"
            if key not in EVALUATION_OF_KEY or measure not in MEASURES:
                raise JungError(f"{rel}: not a <key>_<measure>.json of the layout (keys: {CLEAN_KEY}, "
                                f"{', '.join(SPECTRA.values())} and the 15 corruptions; measures: {', '.join(MEASURES)})")
            groups.setdefault(key, {})[measure] = path
            files.append(rel)
        if not groups:
            continue
        datasets.append(sub.name)
        for key in sorted(groups):
            imp.add_key(sub.name, key, groups[key], {m: f"{sub.name}/{p.name}" for m, p in groups[key].items()})
    if not files:
        raise JungError(f"{folder}: no <dataset>/<key>_<measure>.json file")
    table = imp.b.table()
    return JungImport(concat([table, _complexity(table)]), ids, datasets, files, imp.inexact, imp.first_inexact)


def _complexity(table: pa.Table) -> pa.Table:
    """params/MACs rows of the imported cifar10 architectures (NB201's C = 16 network, closed form)."""
    sel = table.filter(pc.equal(table["dataset"], COMPLEXITY_DATASET)).select(["arch_id", "arch"])
    archs = dict(zip(sel.column("arch_id").to_pylist(), sel.column("arch").to_pylist(), strict=True))
    b = LongBuilder()
    for aid in sorted(archs):
        b.add(2, list(SPACE.complexity(archs[aid], SCALE)), dataset=COMPLEXITY_DATASET, space=SPACE_NAME, arch_id=aid,
              arch=archs[aid], checkpoint=CHECKPOINT, evaluation="complexity", metric=["params", "macs"], key="")
    return b.table()


def write_long_folder(imported: JungImport, out: str | Path, *, version: str | None = None,
                      source: str | None = None) -> Path:
    """Write `imported` as a folder `nares.api.long.LongDataset` opens: RELEASE.json (space nb201),
    `architectures.parquet` (the 15,625 cells in the import's id order, representative_id = Jung's representative)
    and `tables/results/part-NNN.parquet`. `out` must not exist or be empty."""
    from nares.space_table import space_table, write_table
    from nares.spaces.base import SpaceIndex

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise JungError(f"--out {out} exists and is not an empty folder")
    out.mkdir(parents=True, exist_ok=True)
    index = SpaceIndex(SPACE, list(imported.ids.cells))
    arch = space_table(index, SCALE, SPACE)
    reps = pa.array([r + 1 for r in imported.ids.isomorph], type=pa.int32())
    arch = arch.set_column(arch.schema.get_field_index("representative_id"), "representative_id", reps)
    write_table(arch, out / "architectures.parquet")
    t = imported.table
    shards = (t.column("arch_id").to_numpy() - 1) // SHARD_ARCHS
    for shard in np.unique(shards):
        path = shard_path(out / "tables", int(shard))
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path, "wb") as fh:
            pq.write_table(t.filter(pa.array(shards == shard)), fh)
    info = {"version": version or out.name, "space": SPACE_NAME, "datasets": imported.datasets,
            "architectures": {"trained": len(np.unique(t.column("arch_id").to_numpy())), "answerable": N_CELLS},
            "id_map": imported.ids.source,
            "source": {"layout": "Jung et al. 2023 (robustness dataset)", "folder": source, "files": imported.files,
                       "inexact_accuracies": imported.inexact}}
    with atomic_write(out / "RELEASE.json", "w") as fh:
        json.dump(info, fh, indent=1)
    return out
