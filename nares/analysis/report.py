"""`build_report`: the paper's analyses (PROTOCOL §8) as PNG figures, `report.json` and `index.html`.

Figures use matplotlib's Agg backend. The figures over coordinates read the dataset's search space
(`dataset.space`, WRN when absent): one box plot per coordinate column of its `coord_schema`, and PCA on
the raw coordinate vectors (for WRN the 6-dim D1, W1, D2, W2, D3, W3) standardised per coordinate over the
fitted points, so each loading reads as "how much this coordinate separates the sets"; it is fitted on the
union of the best and worst sets. The depth/width ratio figure exists for the WRN space only.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np

from nares.analysis.pareto import best_and_worst, pareto_ranks
from nares.analysis.pca import pca
from nares.analysis.ratios import depth_share, width_per_depth
from nares.analysis.stats import kendall_tau, pearson, spearman
from nares.io import atomic_write
from nares.spaces import SearchSpace
from nares.spaces.wrn import SPACE as WRN
from nares.spaces.wrn import WRNSpace

BEST_RANK = 16


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out: Path, name: str) -> str:
    with atomic_write(out / name) as fh:
        fig.savefig(fh, format="png", dpi=110, bbox_inches="tight")
    _plt().close(fig)
    return name


def _scatter(ax, x, y, xlabel: str, ylabel: str, **kw) -> None:
    small = len(x) < 500  # few points: draw them large enough to see
    ax.scatter(x, y, s=kw.pop("s", 25 if small else 4), alpha=kw.pop("alpha", 0.8 if small else 0.5), linewidths=0, **kw)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)


def _corr(x, y) -> dict[str, float]:
    return {"pearson": pearson(x, y), "spearman": spearman(x, y), "kendall": kendall_tau(x, y)}


def _fig_complexity(df, out: Path) -> str:
    plt = _plt()
    fig, axes = plt.subplots(2, 3, figsize=(13, 7.5))
    for r, (col, label) in enumerate((("PARAMS", "Params (M)"), ("MACS", "MACs (M)"))):
        for c, m in enumerate(("TEST_CLEAN_ACC", "TEST_PGD_ACC", "TEST_AA_ACC")):
            _scatter(axes[r, c], df[col], df[m], label, f"{m} (%)")
            if df[col].max() >= 10 * df[col].min():  # log only across a decade or more (the full space: ~11x)
                axes[r, c].set_xscale("log")
    fig.suptitle("Accuracy vs #Params and #MACs (test set, best checkpoint)")
    return _save(fig, out, "accuracy_vs_complexity.png")


def _coord_columns(space: SearchSpace) -> list[str]:
    return [c for c, _ in space.coord_schema]


def _fig_coordinates(df, out: Path, space: SearchSpace, y: str = "TEST_PGD_ACC",
                     what: str = "PGD-20 test accuracy") -> str:
    plt = _plt()
    cols = _coord_columns(space)
    fig, axes = plt.subplots(2, (len(cols) + 1) // 2, figsize=(13, 7.5), sharey=True, squeeze=False)
    for k, col in enumerate(cols):
        name = col.upper()
        ax = axes[k % 2, k // 2]
        values = sorted(df[col].unique())
        ax.boxplot([df.loc[df[col] == v, y].to_numpy() for v in values],
                   tick_labels=[str(v) for v in values], showfliers=False)
        if any(len(str(v)) > 4 for v in values):  # categorical values (NB201 ops): readable, not overlapping
            ax.tick_params(axis="x", labelrotation=30, labelsize=8)
        ax.set_xlabel(name)
        ax.set_ylabel(f"{y} (%)")
        ax.grid(alpha=0.3)
    fig.suptitle(f"{what} per value of each depth (top) and width (bottom) coordinate"
                 if isinstance(space, WRNSpace) else f"{what} per value of each coordinate")
    return _save(fig, out, "coordinate_distributions.png")


def _fig_stable_lipschitz(df, out: Path, stats: dict) -> str:
    plt = _plt()
    fig, axes = plt.subplots(1, 4, figsize=(18, 4))
    fig.subplots_adjust(wspace=0.35)
    pairs = (("TEST_PGD_STABLE", "TEST_PGD_ACC"), ("TEST_CW_STABLE", "TEST_CW_ACC"),
             ("TEST_PGD_LIP", "TEST_PGD_ACC"), ("TEST_CW_LIP", "TEST_CW_ACC"))
    for ax, (x, y) in zip(axes, pairs, strict=True):
        stats[f"{x}~{y}"] = _corr(df[x], df[y])
        _scatter(ax, df[x], df[y], x, f"{y} (%)")
        ax.set_title(f"Spearman ρ = {stats[f'{x}~{y}']['spearman']:.3f}", fontsize=10)
    fig.suptitle("Stable accuracy and empirical Lipschitz constant vs robust accuracy")
    return _save(fig, out, "stable_and_lipschitz.png")


def _fig_ratios(df, archs, out: Path, stats: dict) -> str:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, (key, fn, label) in zip(axes, (("depth_share", depth_share, "ΣD / (ΣD + ΣW)"),
                                           ("width_per_depth", width_per_depth, "½ (C1/D1 + C2/D2)")), strict=True):
        x = np.array([fn(a) for a in archs])
        stats[f"{key}~TEST_PGD_ACC"] = _corr(x, df["TEST_PGD_ACC"])
        _scatter(ax, x, df["TEST_PGD_ACC"], label, "TEST_PGD_ACC (%)")
        ax.set_title(f"Spearman ρ = {stats[f'{key}~TEST_PGD_ACC']['spearman']:.3f}", fontsize=10)
    fig.suptitle("Depth/width principles vs PGD-20 test accuracy")
    return _save(fig, out, "design_ratios.png")


def _fig_pareto(df, ranks, best, worst, out: Path, y: str = "TEST_PGD_ACC",
                what: str = "PGD-20 test accuracy") -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 5.5))
    sc = ax.scatter(df["MACS"], df[y], c=ranks, cmap="viridis_r", s=25 if len(df) < 500 else 5, linewidths=0)
    ax.scatter(df["MACS"].iloc[worst], df[y].iloc[worst], s=10, facecolors="none", edgecolors="tab:blue",
               linewidths=0.6, label=f"worst set ({len(worst)})")
    ax.scatter(df["MACS"].iloc[best], df[y].iloc[best], s=10, facecolors="none", edgecolors="tab:red",
               linewidths=0.6, label=f"best set: rank < {BEST_RANK} ({len(best)})")
    front = np.flatnonzero(ranks == 0)
    front = front[np.argsort(df["MACS"].to_numpy()[front])]
    ax.plot(df["MACS"].iloc[front], df[y].iloc[front], color="black", lw=1, label="Pareto front (rank 0)")
    fig.colorbar(sc, ax=ax, label="Pareto rank")
    ax.set_xlabel("MACs (M)")
    ax.set_ylabel(f"{y} (%)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax.set_title(f"Pareto rank on ({what} ↑, MACs ↓)")
    return _save(fig, out, "pareto_rank.png")


def _fig_pca(enc, names: list[str], best, worst, out: Path, stats: dict) -> str | None:
    idx = np.r_[best, worst]
    if len(idx) < 3:
        return None
    fit = pca(enc[idx], 2, standardize=True)
    stats["pca"] = {"components": dict(zip(("PC1", "PC2"), (dict(zip(names, c.round(4).tolist(), strict=True))
                                                               for c in fit.components), strict=False)),
                    "explained_variance_ratio": fit.explained_variance_ratio.round(4).tolist()}
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    s_best, s_worst = fit.scores[: len(best)], fit.scores[len(best):]
    axes[0].scatter(s_worst[:, 0], s_worst[:, 1], s=8, c="tab:blue", alpha=0.6, label="worst set")
    axes[0].scatter(s_best[:, 0], s_best[:, 1], s=8, c="tab:red", alpha=0.6, label="best set")
    evr = fit.explained_variance_ratio
    axes[0].set_xlabel(f"PC1 ({100 * evr[0]:.1f}% of variance)")
    axes[0].set_ylabel(f"PC2 ({100 * evr[1]:.1f}% of variance)" if len(evr) > 1 else "PC2")
    axes[0].legend(fontsize=8)
    axes[0].grid(alpha=0.3)
    width = 0.38
    pos = np.arange(len(names))
    for k, comp in enumerate(fit.components):
        axes[1].bar(pos + (k - 0.5) * width, comp, width, label=f"PC{k + 1}")
    axes[1].set_xticks(pos, names, **({"rotation": 90, "fontsize": 7} if len(names) > 12 else {}))
    axes[1].axhline(0, color="black", lw=0.6)
    axes[1].set_ylabel("loading (standardised encoding)")
    axes[1].legend(fontsize=8)
    fig.suptitle("PCA (2 components) of the encodings of the best and worst Pareto sets")
    return _save(fig, out, "pca_best_worst.png")


def _fig_val_test(df, out: Path, stats: dict) -> str:
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for ax, (v, t) in zip(axes, (("VAL_CLEAN_ACC", "TEST_CLEAN_ACC"), ("VAL_PGD_ACC", "TEST_PGD_ACC"),
                                 ("VAL_CW_ACC", "TEST_CW_ACC")), strict=True):
        c = stats[f"{v}~{t}"] = _corr(df[v], df[t])
        _scatter(ax, df[v], df[t], f"{v} (%)", f"{t} (%)")
        ax.set_title(f"Pearson {c['pearson']:.3f}  Spearman {c['spearman']:.3f}  Kendall {c['kendall']:.3f}", fontsize=9)
    fig.suptitle("Validation (best epoch) vs test (best checkpoint)")
    return _save(fig, out, "val_vs_test.png")


def build_report(dataset, out: str | Path) -> Path:
    """Write the figures, `report.json` and `index.html` of `dataset` under `out`; returns index.html."""
    space = getattr(dataset, "space", None) or WRN
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    df = dataset.frame()
    archs = dataset.archs()
    stats: dict = {"architectures": len(df), "source": dataset.source}
    ranks = pareto_ranks(df["TEST_PGD_ACC"].to_numpy(), df["MACS"].to_numpy())
    best, worst = best_and_worst(df["TEST_PGD_ACC"].to_numpy(), df["MACS"].to_numpy(), BEST_RANK, ranks=ranks)
    stats["pareto"] = {"fronts": int(ranks.max()) + 1, "front_size": int((ranks == 0).sum()), "best_set": len(best),
                       "front": [str(archs[i]) for i in np.flatnonzero(ranks == 0)]}
    cols = _coord_columns(space)
    enc = np.array([[space.coords(a)[c] for c in cols] for a in archs], dtype=np.float64)
    wrn = isinstance(space, WRNSpace)
    figures = [
        ("Accuracy vs #Params and #MACs", _fig_complexity(df, out)),
        ("Distributions per depth and width value" if wrn else "Distributions per coordinate value",
         _fig_coordinates(df, out, space)),
        ("Stable accuracy and Lipschitz vs robustness", _fig_stable_lipschitz(df, out, stats)),
        ("Depth/width ratios vs robustness", _fig_ratios(df, archs, out, stats) if wrn else None),
        ("Pareto rank", _fig_pareto(df, ranks, best, worst, out)),
        ("PCA of the best and worst sets", _fig_pca(enc, [c.upper() for c in cols], best, worst, out, stats)),
        ("Validation vs test", _fig_val_test(df, out, stats)),
    ]
    with atomic_write(out / "report.json", "w") as fh:
        json.dump(_finite(stats), fh, indent=1, allow_nan=False)
    with atomic_write(out / "index.html", "w") as fh:
        fh.write(_html(stats, [(t, f) for t, f in figures if f], [c.upper() for c in cols]))
    return out / "index.html"


def _finite(obj):
    """`obj` with NaN/inf floats replaced by None (strict JSON)."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    if isinstance(obj, float | np.floating):
        return float(obj) if np.isfinite(obj) else None
    return obj


def _html(stats: dict, figures: list[tuple[str, str]], names: list[str], objective: str = "TEST_PGD_ACC") -> str:
    corr_rows = "".join(
        f"<tr><td>{html.escape(k.replace('~', ' vs '))}</td>" + "".join(f"<td>{v[c]:.3f}</td>" for c in ("pearson", "spearman", "kendall"))
        + "</tr>" for k, v in stats.items() if "~" in k)
    pca_rows = ""
    if "pca" in stats:
        pca_rows = "".join(f"<tr><td>{pc}</td>" + "".join(f"<td>{w:+.3f}</td>" for w in comp.values()) + "</tr>"
                           for pc, comp in stats["pca"]["components"].items())
    figs = "".join(f'<h2>{html.escape(t)}</h2><img src="{f}" alt="{html.escape(t)}">' for t, f in figures)
    p = stats["pareto"]
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>NARes analysis report</title>
<style>body{{font-family:sans-serif;max-width:1200px;margin:2em auto}}img{{max-width:100%}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}</style></head>
<body><h1>NARes analysis report</h1>
<p>Data: {html.escape(str(stats['source']))} — {stats['architectures']} architectures.
Accuracies in percent (validation at the best epoch, test with the best checkpoint); MACs and Params in millions.</p>
<p>Pareto ranks on ({html.escape(objective)} ↑, MACs ↓): {p['fronts']} fronts, {p['front_size']} architectures on the front,
best set (rank &lt; {BEST_RANK}) of {p['best_set']}; worst set of the same size by inverse rank.</p>
{f'<h2>Correlations</h2><table><tr><th>pair</th><th>Pearson</th><th>Spearman</th><th>Kendall τ-b</th></tr>{corr_rows}</table>' if corr_rows else ''}
<h2>PCA loadings (standardised {names[0]}…{names[-1]})</h2><table><tr><th></th>{''.join(f'<th>{c}</th>' for c in names)}</tr>{pca_rows}</table>
{figs}
</body></html>
"""
