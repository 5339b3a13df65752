"""`build_results_report`: the figures any search space gets, from the long results table alone.

One objective (an (evaluation, metric, key) of the long table, at one checkpoint) against the exact
complexity (the `complexity` evaluation's rows): accuracy vs #Params/#MACs, the objective per value of each
coordinate of the space's `coord_schema`, Pareto ranks on (objective ↑, MACs ↓) and, with at least three
points, PCA of the coordinates (or of the NAS encoding, for categorical coordinates) of the best and worst sets,
the space's own figures (`nares.analysis.cell_report.SPACE_FIGURES`) and, when the table holds them, the
robustness analyses of the neighbouring datasets (`nares.analysis.spectra_report`: Kendall τ of the proxies with
each (attack, ε) and of clean with corrupted accuracy, robust accuracy vs ε, the spread at equal parameter count);
`report.json` and `index.html` as `build_report`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from nares.analysis.cell_report import SPACE_FIGURES
from nares.analysis.pareto import best_and_worst, pareto_ranks
from nares.analysis.report import (
    BEST_RANK,
    _coord_columns,
    _fig_coordinates,
    _fig_pareto,
    _fig_pca,
    _finite,
    _html,
    _plt,
    _save,
    _scatter,
)
from nares.analysis.spectra_report import spectra_figures, spectra_html
from nares.errors import NaresError
from nares.io import atomic_write
from nares.spaces import SearchSpace


def _frame(table: pa.Table, space: SearchSpace, evaluation: str, metric: str, key: str, checkpoint: str,
           column: str) -> pd.DataFrame:
    df = table.filter(pc.equal(table["space"], space.name)).to_pandas()
    pick = df[(df["evaluation"] == evaluation) & (df["metric"] == metric) & (df["key"] == key)
              & (df["checkpoint"] == checkpoint)]
    cx = df[df["evaluation"] == "complexity"].pivot_table(index="arch_id", columns="metric", values="value",
                                                          aggfunc="last")
    if pick.empty or not {"params", "macs"} <= set(cx.columns):
        raise NaresError(f"the results hold no {evaluation}/{metric}[{key!r}] at checkpoint {checkpoint!r} with "
                         f"complexity rows for space {space.name!r}")
    out = pick.groupby("arch_id", sort=True).agg(arch=("arch", "last"), value=("value", "last"))
    out = out.join(cx[["params", "macs"]], how="inner")
    out[column] = out.pop("value")
    out["PARAMS"], out["MACS"] = out.pop("params") / 1e6, out.pop("macs") / 1e6
    archs = [space.parse(a) for a in out["arch"]]
    for c in _coord_columns(space):
        out[c] = [space.coords(a)[c] for a in archs]
    return out.reset_index()


def build_results_report(table: pa.Table, space: SearchSpace, out: str | Path, *, evaluation: str, metric: str,
                         key: str = "", checkpoint: str = "best", source: str = "results") -> Path:
    """Write the generic figures, `report.json` and `index.html` of `space`'s rows of `table`; returns index.html."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    y = f"{evaluation}_{metric}" + (f"[{key}]" if key else "")
    df = _frame(table, space, evaluation, metric, key, checkpoint, y)
    archs = [space.parse(a) for a in df["arch"]]
    stats: dict = {"architectures": len(df), "source": source, "space": space.name, "objective": y}
    ranks = pareto_ranks(df[y].to_numpy(), df["MACS"].to_numpy())
    best, worst = best_and_worst(df[y].to_numpy(), df["MACS"].to_numpy(), BEST_RANK, ranks=ranks)
    stats["pareto"] = {"fronts": int(ranks.max()) + 1, "front_size": int((ranks == 0).sum()), "best_set": len(best),
                       "front": [space.format(archs[i]) for i in np.flatnonzero(ranks == 0)]}
    cols = _coord_columns(space)
    if all(pd.api.types.is_numeric_dtype(df[c]) for c in cols):
        enc, names = df[cols].to_numpy(dtype=np.float64), [c.upper() for c in cols]
    else:  # categorical coordinates (NB201 ops): the NAS encoding
        enc = np.stack([space.encode(a) for a in archs]).astype(np.float64)
        names = space.encoding_names()
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, (col, label) in zip(axes, (("PARAMS", "Params (M)"), ("MACS", "MACs (M)")), strict=True):
        _scatter(ax, df[col], df[y], label, f"{y} (%)")
    fig.suptitle(f"{y} vs #Params and #MACs ({checkpoint} checkpoint)")
    figures = [
        ("Objective vs #Params and #MACs", _save(fig, out, "accuracy_vs_complexity.png")),
        ("Distributions per coordinate value", _fig_coordinates(df, out, space, y, y)),
        ("Pareto rank", _fig_pareto(df, ranks, best, worst, out, y, y)),
        ("PCA of the best and worst sets", _fig_pca(enc, names, best, worst, out, stats)),
        *SPACE_FIGURES.get(space.name, lambda *a: [])(df, archs, out, y, stats),
        *spectra_figures(table, space, out, stats, checkpoint=checkpoint),
    ]
    with atomic_write(out / "report.json", "w") as fh:
        json.dump(_finite(stats), fh, indent=1, allow_nan=False)
    page = _html(stats, [(t, f) for t, f in figures if f], names, y)
    with atomic_write(out / "index.html", "w") as fh:
        fh.write(page.replace("</body>", spectra_html(stats) + "</body>", 1))
    return out / "index.html"


# The objective a long-table release's report ranks by, the first one the release holds: PGD-20 (PROTOCOL §3),
# AA-Compact, then the clean accuracy of the Jung et al. layout and of PROTOCOL §3.
OBJECTIVES: tuple[tuple[str, str, str], ...] = (("pgd", "acc", ""), ("aa", "acc", ""), ("confusion", "acc", ""),
                                                ("clean", "acc", ""))


def build_dataset_report(dataset, out: str | Path, objective: tuple[str, str, str] | None = None) -> Path:
    """`build_results_report` of an opened long-table release (`nares.api.long.LongDataset`): its table and space,
    ranked by `objective` (default: the first of `OBJECTIVES` it holds); returns index.html."""
    held = set(dataset.metrics())
    pick = objective or next((o for o in OBJECTIVES if o in held), None)
    if pick is None:
        raise NaresError(f"{dataset.source} holds none of the report's objectives "
                         f"({', '.join('/'.join(o[:2]) for o in OBJECTIVES)})")
    evaluation, metric, key = pick
    return build_results_report(dataset.table(), dataset.space, out, evaluation=evaluation, metric=metric, key=key,
                                source=dataset.source)
