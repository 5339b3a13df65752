"""`LongDataset`: a release of the long results table (any space but the published WRN layout) for queries and
NAS: any architecture of the space is answered, through its class's representative when the space has classes.

Opened by `open_folder` when a release's RELEASE.json names a space other than wrn. Imports pyarrow, numpy and
the spaces; not the store, Prefect, Ray or the app.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from nares.errors import ArchError, DataError
from nares.results.schema import TRAIN
from nares.spaces import SearchSpace, SpaceIndex, configured_space
from nares.spaces.base import Arch

BEST = "best"
VAL_HISTORY: dict[str, str] = {"VAL_CLEAN_ACC": "val_acc", "VAL_PGD_ACC": "pgd", "VAL_CW_ACC": "cw"}  # history key


class LongDataset:
    """The values of one long-table release. `query(arch)` gives every value of the architecture trained for
    `arch` (its representative), keyed `evaluation/metric[key]`; `values(evaluation, metric, key)` gives one value
    per architecture of the space's id map (NaN where none was trained), the array NAS searches over."""

    def __init__(self, folder: Path, info: dict[str, Any]):
        from nares.config import load_preset
        from nares.results.store import read_results

        self.folder, self.info = folder, info
        try:
            cfg = load_preset(info["preset"])
        except Exception:
            cfg = {"space": {"name": info["space"]}}
        section = dict(cfg.get("space") or {"name": info["space"]})
        self.space: SearchSpace = configured_space(section)
        self.results = read_results(folder / "tables")
        self.architectures = pq.read_table(folder / "architectures.parquet")
        ids = self.architectures.column("arch_id").to_pylist()
        archs = self.architectures.column("arch").to_pylist()
        self.index = SpaceIndex.from_mapping(self.space, dict(zip(ids, archs, strict=True)))
        reps = (self.architectures.column("representative_id").to_pylist() if "representative_id"
                in self.architectures.column_names else ids)
        self._rep = dict(zip(ids, reps, strict=True))
        self.trained = np.unique(self.results.column("arch_id").to_numpy())

    def __repr__(self) -> str:
        return (f"<LongDataset {self.info.get('version')} space {self.space.name!r}: {len(self.trained)} trained, "
                f"{len(self.index)} answerable>")

    def __len__(self) -> int:
        return len(self.index)

    def id_of(self, arch: Any) -> int:
        """The arch_id of an architecture (its string, the object, or an id)."""
        if isinstance(arch, int | np.integer):
            self.index.arch_of(int(arch))
            return int(arch)
        try:
            return self.index.id_of(arch)
        except KeyError:
            raise ArchError(f"{arch!s} is not in release {self.info.get('version')} (space {self.space.name})") from None

    def arch_of(self, arch: Any) -> Arch:
        return self.index.arch_of(self.id_of(arch))

    def representative_id(self, arch: Any) -> int:
        """The arch_id of the architecture trained for `arch` (itself in a space without classes)."""
        return int(self._rep[self.id_of(arch)])

    def query(self, arch: Any) -> dict[str, Any]:
        """{"arch_id", "arch", "representative_id", "representative", "values": {"evaluation/metric[key]": value}}:
        the best checkpoint's evaluations, complexity and training summary (best_epoch, training_time)."""
        aid = self.id_of(arch)
        rep = self.representative_id(aid)
        rows = self.results.filter(pc.equal(self.results["arch_id"], rep))
        if rows.num_rows == 0:
            raise DataError(f"{self.space.format(self.index.arch_of(rep))} (arch_id {rep}) was not trained in release "
                            f"{self.info.get('version')}")
        values: dict[str, float] = {}
        for ev, m, k, ck, v in zip(*(rows.column(c).to_pylist() for c in ("evaluation", "metric", "key",
                                                                          "checkpoint", "value")), strict=True):
            if ev == TRAIN and m not in ("best_epoch", "training_time"):
                continue  # per-epoch history: `curve`
            if ck in (BEST, ""):
                values[f"{ev}/{m}" + (f"[{k}]" if k else "")] = v
        return {"arch_id": aid, "arch": self.space.format(self.index.arch_of(aid)), "representative_id": rep,
                "representative": self.space.format(self.index.arch_of(rep)), "values": dict(sorted(values.items()))}

    def values(self, evaluation: str, metric: str, key: str = "", checkpoint: str = BEST) -> np.ndarray:
        """One value per arch_id 1..len (index i ↔ arch_id i+1), each read from its representative; NaN where
        the release holds none. `checkpoint` is ignored for values not tied to one (training, complexity)."""
        r = self.results
        mask = pc.and_(pc.and_(pc.equal(r["evaluation"], evaluation), pc.equal(r["metric"], metric)),
                       pc.equal(r["key"], key))
        if evaluation not in (TRAIN, "complexity"):
            mask = pc.and_(mask, pc.equal(r["checkpoint"], checkpoint))
        sel = r.filter(mask)
        by_id = dict(zip(sel.column("arch_id").to_pylist(), sel.column("value").to_pylist(), strict=True))
        return np.array([by_id.get(self._rep[i], np.nan) for i in range(1, len(self.index) + 1)], dtype=np.float64)

    # -- the Metric names of the published layout, for the NAS runner and its summary ------------------------
    @property
    def source(self) -> str:
        return str(self.folder)

    def archs(self) -> list[Arch]:
        return [self.index.arch_of(i) for i in range(1, len(self.index) + 1)]

    def named_values(self, name: str) -> np.ndarray:
        """`values` of a published Metric name: VAL_* = the training history at the best epoch, TEST_<E>_<M> =
        evaluation e, metric m on the best checkpoint (`TEST_PGD_ACC` = pgd/acc). Computed once per name (the NAS
        summary reads one value per run and metric)."""
        cache = self.__dict__.setdefault("_named", {})
        if name not in cache:
            cache[name] = self._named_values(name)
        return cache[name]

    def _named_values(self, name: str) -> np.ndarray:
        from nares.results.schema import metric_name

        if name in VAL_HISTORY:
            best = self.values(TRAIN, "best_epoch")
            hist = self.results.filter(pc.and_(pc.equal(self.results["evaluation"], TRAIN),
                                               pc.equal(self.results["metric"], VAL_HISTORY[name])))
            at = {(a, k): v for a, k, v in zip(*(hist.column(c).to_pylist() for c in ("arch_id", "key", "value")),
                                               strict=True)}
            return np.array([at.get((self._rep[i], str(int(b))), np.nan) if b == b else np.nan
                             for i, b in zip(range(1, len(self.index) + 1), best, strict=True)], dtype=np.float64)
        for ev, m, k in self.metrics():
            if not k and metric_name(ev, m) == name:
                return self.values(ev, m)
        raise DataError(f"metric {name!r} is not in release {self.info.get('version')} "
                        f"(it holds {', '.join(sorted({metric_name(e, m) for e, m, _ in self.metrics()}))})")

    def objective_values(self, objective: str) -> np.ndarray:
        """The NAS objective of every architecture (arch_id order): a validation metric (`VAL_*`), NaN where the
        release answers none (its class was not trained). The NAS runner searches the answered architectures
        (`nares.nas.runner.search_problem`: the whole space when every one is answered); a release that answers
        none is one DataError line."""
        if objective not in VAL_HISTORY:
            raise DataError(f"NAS objective {objective!r} must be a validation metric ({', '.join(VAL_HISTORY)})")
        v = self.named_values(objective)
        if np.isnan(v).all():
            raise DataError(f"release {self.info.get('version')} answers {objective} for none of its {len(v)} "
                            "architectures")
        return v

    def metric_names(self) -> list[str]:
        """The published Metric names this release can answer: the VAL_* of the training history, and
        TEST_<EVALUATION>_<METRIC> of each evaluation's key-less values (`TEST_PGD_ACC` = pgd/acc)."""
        from nares.results.schema import metric_name

        return [*VAL_HISTORY, *sorted({metric_name(e, m) for e, m, k in self.metrics() if not k and e != TRAIN})]

    def metric(self, arch: Any, name: str) -> float:
        return float(self.named_values(name)[self.id_of(arch) - 1])

    def optimum(self, name: str) -> tuple[Arch, float]:
        v = self.named_values(name)
        i = int(np.nanargmax(v))
        return self.index.arch_of(i + 1), float(v[i])

    def curve(self, arch: Any, evaluation: str, metric: str = "acc", over: str = "eps",
              checkpoint: str = BEST) -> tuple[list[float], list[float]]:
        """(ε, values) of a spectrum evaluation for `arch` (through its representative), ε ascending: e.g.
        `curve(cell, "pgd_eps")` = robust accuracy (%) per ε in 1/255 units. Only the scalar keys (ε) are read;
        matrix entries ("<ε>/<i>/<j>") are left out. `over` is "eps", the one axis spectra have."""
        if over != "eps":
            raise DataError(f"over={over!r}: spectra run over eps only")
        rep = self.representative_id(arch)
        r = self.results
        sel = r.filter(pc.and_(pc.and_(pc.equal(r["arch_id"], rep), pc.equal(r["evaluation"], evaluation)),
                               pc.and_(pc.equal(r["metric"], metric), pc.equal(r["checkpoint"], checkpoint))))
        points = sorted((float(k), v) for k, v in zip(sel.column("key").to_pylist(), sel.column("value").to_pylist(),
                                                      strict=True) if k and "/" not in k)
        if not points:
            raise DataError(f"release {self.info.get('version')} holds no {evaluation}/{metric} spectrum for "
                            f"{self.space.format(self.index.arch_of(rep))}")
        return [e for e, _ in points], [v for _, v in points]

    def metrics(self) -> list[tuple[str, str, str]]:
        """The (evaluation, metric, key) triples the release holds (training history left out)."""
        t = self.results.select(["evaluation", "metric", "key"]).to_pylist()
        return sorted({(x["evaluation"], x["metric"], x["key"]) for x in t
                       if x["evaluation"] != TRAIN or x["metric"] in ("best_epoch", "training_time")})

    def top(self, evaluation: str, metric: str, key: str = "", k: int = 10) -> list[tuple[int, str, float]]:
        """The `k` trained architectures with the highest value: (arch_id, arch, value)."""
        v = self.values(evaluation, metric, key)
        trained = {int(i) for i in self.trained}
        order = [i for i in np.argsort(-np.nan_to_num(v, nan=-np.inf), kind="stable") if int(i) + 1 in trained]
        return [(int(i) + 1, self.space.format(self.index.arch_of(int(i) + 1)), float(v[i])) for i in order[:k]]

    def table(self) -> pa.Table:
        return self.results


def is_long_release(folder: Path) -> bool:
    """True for a release folder whose RELEASE.json names a space other than the published WRN layout's."""
    path = Path(folder) / "RELEASE.json"
    return path.is_file() and json.loads(path.read_text()).get("space", "wrn") != "wrn"


def open_long(folder: Path) -> LongDataset:
    return LongDataset(Path(folder), json.loads((Path(folder) / "RELEASE.json").read_text()))
