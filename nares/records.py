"""The published record layout (PROTOCOL §4): build, check, read and write `cifar10.jsonl` records.

A record is one JSON object per architecture. In it every accuracy and stable accuracy is a
PERCENTAGE (0–100), losses and Lipschitz values are raw, `Params`/`MACs` are in MILLIONS,
`timestamp` is `YYYY-MM-DD`, `training_time` is in GPU-days and `best_epoch` is a 0-based index.
The project's own tables hold accuracies as FRACTIONS in [0, 1]; `pct_from_fraction` and
`fraction_from_pct` convert between the two so that jsonl → fractions → jsonl is exact (see
`pct_from_fraction`). Imports only the standard library, numpy and `nares.spaces.wrn`/`nares.io`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from nares.errors import NaresError
from nares.io import atomic_write
from nares.spaces.wrn import JSONL_KEYS, Arch

RECORD_KEYS = ("arch_id", "arch", "MACs", "Params", "train", "test_best")
TRAIN_SCALARS = ("seed", "gpu_type", "timestamp", "training_time", "best_epoch")
HISTORY_KEYS = (
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "pgd",
    "pgd_stable",
    "pgd_lip",
    "pgd_loss",
    "cw",
    "cw_stable",
    "cw_lip",
    "cw_loss",
)
HISTORY_PCT = frozenset({"train_acc", "val_acc", "pgd", "pgd_stable", "cw", "cw_stable"})
TEST_KEYS = (
    "test_clean_acc",
    "test_loss",
    "Linf_fgsm_acc",
    "Linf_fgsm_stable",
    "Linf_pgd_acc",
    "Linf_pgd_stable",
    "Linf_pgd_lip",
    "Linf_cw_acc",
    "Linf_cw_stable",
    "Linf_cw_lip",
    "Linf_aa_acc",
)
TEST_PCT = frozenset(k for k in TEST_KEYS if k.endswith(("_acc", "_stable")) and k != "test_loss")
SEVERITY_KEYS = ("1", "2", "3", "4", "5")
MILLION = 1_000_000
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class RecordError(NaresError, ValueError):
    """A record that does not follow the published layout; the message names the field."""


# ---------------------------------------------------------------- units


def _ulp_steps(x: np.ndarray, k: int) -> np.ndarray:
    out = x
    direction = np.inf if k > 0 else -np.inf
    for _ in range(abs(k)):
        out = np.nextafter(out, direction)
    return out


def _pct_array(f: np.ndarray) -> np.ndarray:
    """Canonical percentage p of each fraction f: the float near 100·f whose p/100 rounds back to f."""
    f = np.asarray(f, dtype=np.float64)
    out = f * 100.0
    finite = np.isfinite(f)
    if not finite.any():
        return out
    ff = f[finite]
    c0 = ff * 100.0
    # Prefer the 11-decimal rounding of 100·f: it reproduces every short decimal percentage exactly.
    r = np.round(c0, 11)
    pick = np.where(r / 100.0 == ff, r, np.nan)
    for k in (0, -1, 1, -2, 2):
        todo = np.isnan(pick)
        if not todo.any():
            break
        ck = _ulp_steps(c0[todo], k)
        pick[todo] = np.where(ck / 100.0 == ff[todo], ck, np.nan)
    todo = np.isnan(pick)
    if todo.any():  # f is no float's p/100: use the percentage of the fraction that 100·f maps back to
        pick[todo] = _pct_array(c0[todo] / 100.0)
    out[finite] = pick
    return out


def pct_from_fraction(x: Any) -> Any:
    """Fraction(s) in [0, 1] → percentage(s); None/NaN pass through.

    The result p always satisfies `p / 100 == fraction_from_pct(p)` and
    `pct_from_fraction(fraction_from_pct(p)) == p` holds for every p this function returns and
    for every percentage written with at most 11 decimals (the published ones: 100·count/N).
    """
    if x is None:
        return None
    if isinstance(x, np.ndarray):
        return _pct_array(x)
    if isinstance(x, list | tuple):
        pcts = _pct_array(np.array([np.nan if v is None else v for v in x], dtype=np.float64)).tolist()
        return [None if v is None else p for v, p in zip(x, pcts, strict=True)]
    return float(_pct_array(np.array([x], dtype=np.float64))[0])


def fraction_from_pct(x: Any) -> Any:
    """Percentage(s) → fraction(s): the correctly rounded p / 100; None passes through."""
    if x is None:
        return None
    if isinstance(x, np.ndarray):
        return np.asarray(x, dtype=np.float64) / 100.0
    if isinstance(x, list | tuple):
        return [None if v is None else float(v) / 100.0 for v in x]
    return float(x) / 100.0


def millions(count: int) -> float:
    """An exact count → the published unit (millions, e.g. 23354842 → 23.354842)."""
    return count / MILLION


def count_from_published(value: Any, field: str) -> int:
    """`Params`/`MACs` of a published record → exact count: a JSON integer is a raw count, a float is millions."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise RecordError(f"{field}={value!r} is not a non-negative number")
    return int(value) if isinstance(value, int) else round(value * MILLION)


# ---------------------------------------------------------------- build


def _req(d: Mapping, key: str, where: str) -> Any:
    if key not in d:
        raise RecordError(f"{where} lacks {key!r}")
    return d[key]


def build_record(*, arch_id: int, arch: Arch, params: int, macs: int, train: dict, test: dict) -> dict:
    """The published record of one architecture from the trainer's and evaluator's outputs.

    `train` and `test` hold accuracies as fractions (keys: module docstring, PROTOCOL §4);
    the result is in the published units (percent, millions) and passes `validate_record`.
    """
    arch = Arch.parse(arch)
    t: dict[str, Any] = {
        "seed": int(_req(train, "seed", "train")),
        "gpu_type": str(_req(train, "gpu_type", "train")),
        "timestamp": str(_req(train, "timestamp", "train")),
        "training_time": float(_req(train, "training_time", "train")),
        "best_epoch": int(_req(train, "best_epoch", "train")),
    }
    lists = {key: [float(v) for v in _req(train, key, "train")] for key in HISTORY_KEYS}
    pct_keys = [k for k in HISTORY_KEYS if k in HISTORY_PCT]
    flat = pct_from_fraction(np.array([v for k in pct_keys for v in lists[k]], dtype=np.float64)).tolist()
    at = 0
    for key in pct_keys:
        n = len(lists[key])
        lists[key], at = flat[at : at + n], at + n
    t.update(lists)
    tb: dict[str, Any] = {key: float(_req(test, key, "test")) for key in TEST_KEYS}
    corr = test.get("corruptions") or {}
    cells = [
        (
            str(name),
            str(s),
            _req(cell, "acc", f"test.corruptions.{name}.{s}"),
            _req(cell, "loss", f"test.corruptions.{name}.{s}"),
        )
        for name, sev in corr.items()
        for s, cell in sev.items()
    ]
    test_pct = [k for k in TEST_KEYS if k in TEST_PCT]
    pcts = pct_from_fraction(
        np.array([tb[k] for k in test_pct] + [float(c[2]) for c in cells], dtype=np.float64)
    ).tolist()
    for k, v in zip(test_pct, pcts, strict=False):
        tb[k] = v
    corruptions: dict[str, dict[str, dict[str, float]]] = {}
    for (name, s, _, loss), acc in zip(cells, pcts[len(test_pct) :], strict=True):
        corruptions.setdefault(name, {})[s] = {"acc": acc, "loss": float(loss)}
    tb["corruptions"] = corruptions
    record = {
        "arch_id": int(arch_id),
        "arch": arch.to_jsonl_dict(),
        "MACs": millions(int(macs)),
        "Params": millions(int(params)),
        "train": [t],
        "test_best": [tb],
    }
    validate_record(record)
    return record


# ---------------------------------------------------------------- validate


def _number(v: Any, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise RecordError(f"{where}={v!r} is not a finite number")
    return float(v)


def _pct(v: Any, where: str) -> None:
    x = _number(v, where)
    if not 0.0 <= x <= 100.0:
        raise RecordError(f"{where}={v!r} is not a percentage in [0, 100]")


def _check_list(values: list, pct: bool, where: str) -> None:
    """Every value a number (and a percentage when `pct`); the message names the first bad index."""
    ok = all(type(v) is float or type(v) is int for v in values) and all(math.isfinite(v) for v in values)
    if ok and pct:
        ok = min(values) >= 0.0 and max(values) <= 100.0
    if not ok:
        for i, v in enumerate(values):
            (_pct if pct else _number)(v, f"{where}[{i}]")


def validate_record(rec: Any) -> None:
    """Raise RecordError naming the first field that breaks the published layout (PROTOCOL §4)."""
    if not isinstance(rec, Mapping):
        raise RecordError(f"record is a {type(rec).__name__}, expected a JSON object")
    for key in RECORD_KEYS:
        _req(rec, key, "record")
    aid = rec["arch_id"]
    if isinstance(aid, bool) or not isinstance(aid, int) or aid < 1:
        raise RecordError(f"arch_id={aid!r} is not a positive integer")
    where = f"record {aid}"
    if not isinstance(rec["arch"], Mapping) or set(rec["arch"]) != set(JSONL_KEYS):
        raise RecordError(f"{where}: arch={rec['arch']!r} must have exactly the keys {list(JSONL_KEYS)}")
    try:
        Arch.parse(rec["arch"])
    except NaresError as e:
        raise RecordError(f"{where}: arch {e}") from None
    for key in ("MACs", "Params"):
        count_from_published(rec[key], f"{where}: {key}")
    for key in ("train", "test_best"):
        if not isinstance(rec[key], list) or len(rec[key]) != 1 or not isinstance(rec[key][0], Mapping):
            raise RecordError(f"{where}: {key} must be a list holding exactly one object")
    tr = rec["train"][0]
    for key in (*TRAIN_SCALARS, *HISTORY_KEYS):
        _req(tr, key, f"{where}: train[0]")
    if isinstance(tr["seed"], bool) or not isinstance(tr["seed"], int):
        raise RecordError(f"{where}: train[0].seed={tr['seed']!r} is not an integer")
    if not isinstance(tr["gpu_type"], str):
        raise RecordError(f"{where}: train[0].gpu_type={tr['gpu_type']!r} is not a string")
    if not isinstance(tr["timestamp"], str) or not _DATE.match(tr["timestamp"]):
        raise RecordError(f"{where}: train[0].timestamp={tr['timestamp']!r} is not YYYY-MM-DD")
    if _number(tr["training_time"], f"{where}: train[0].training_time") < 0:
        raise RecordError(f"{where}: train[0].training_time={tr['training_time']!r} is negative")
    n = None
    for key in HISTORY_KEYS:
        values = tr[key]
        if not isinstance(values, list) or not values:
            raise RecordError(f"{where}: train[0].{key} is not a non-empty list")
        if n is None:
            n = len(values)
        elif len(values) != n:
            raise RecordError(f"{where}: train[0].{key} has {len(values)} epochs, train_loss has {n}")
        _check_list(values, key in HISTORY_PCT, f"{where}: train[0].{key}")
    be = tr["best_epoch"]
    if isinstance(be, bool) or not isinstance(be, int) or not 0 <= be < (n or 0):
        raise RecordError(f"{where}: train[0].best_epoch={be!r} is not an epoch index in 0..{(n or 0) - 1}")
    tb = rec["test_best"][0]
    for key in TEST_KEYS:
        (_pct if key in TEST_PCT else _number)(
            _req(tb, key, f"{where}: test_best[0]"), f"{where}: test_best[0].{key}"
        )
    corr = _req(tb, "corruptions", f"{where}: test_best[0]")
    if not isinstance(corr, Mapping):
        raise RecordError(f"{where}: test_best[0].corruptions is not an object")
    for name, sev in corr.items():
        if not isinstance(sev, Mapping) or not set(sev) <= set(SEVERITY_KEYS) or not sev:
            raise RecordError(
                f"{where}: corruptions.{name} must map severities among {list(SEVERITY_KEYS)} to cells"
            )
        for s, cell in sev.items():
            c = f"{where}: corruptions.{name}.{s}"
            if not isinstance(cell, Mapping):
                raise RecordError(f"{c} is not an object with acc and loss")
            _pct(_req(cell, "acc", c), f"{c}.acc")
            _number(_req(cell, "loss", c), f"{c}.loss")


# ---------------------------------------------------------------- jsonl


def iter_jsonl(path: str | Path) -> Iterator[dict]:
    """Records of a jsonl file one by one (blank lines skipped); a malformed line raises RecordError."""
    path = Path(path)
    if not path.is_file():
        raise RecordError(f"records file {path} does not exist")
    with open(path, "rb") as fh:
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                try:
                    yield orjson.loads(line)
                except orjson.JSONDecodeError as e:
                    raise RecordError(f"{path}:{lineno}: not JSON ({e.msg})") from None


def read_jsonl(path: str | Path) -> list[dict]:
    return list(iter_jsonl(path))


def write_jsonl(path: str | Path, records: Iterable[Mapping]) -> int:
    """Write one compact JSON object per line (UTF-8), atomically; returns the number of records.

    Floats are written in their shortest exact form (read back bit-identical). JSON has no NaN or
    infinity: such a value would be written as null, which `validate_record` rejects.
    """
    n = 0
    with atomic_write(path, "wb") as fh:
        for rec in records:
            fh.write(orjson.dumps(rec, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE))
            n += 1
    return n
