"""The robustness analyses of the neighbouring datasets (PROTOCOL §7.2; Jung et al. 2023) from the long results
table, for any space:

- Kendall τ of each diagnostic proxy (`jacobian`/frobenius and `hessian`/top_eig at keys test, test@init, train,
  train@init) with the clean accuracy and with the robust accuracy of each ε-spectrum evaluation at each ε
  (Jung et al.'s Fig. 3), as a heat map with the τ values printed;
- Kendall τ of the clean accuracy with the accuracy at each corruption × severity (their Figs 5–6);
- robust accuracy against ε of every architecture (faint lines) with the mean and a ±1 standard deviation band,
  one panel per spectrum evaluation, the clean accuracy drawn at ε = 0 as in their notebook;
- the spread of robustness among architectures of equal parameter count: per exact `complexity/params` value the
  min, max and mean of the mean adversarial accuracy (mean over every (spectrum, ε) cell present), and the widest
  group (PROTOCOL's check value: 20 % to 41 % on their data).

Each section exists only when the table holds what it needs. One dataset is analysed (cifar10 when present); the
evaluated checkpoint's rows are read, complexity rows at any checkpoint, and proxies at initialisation also from
`nares proxies` (checkpoint "init") where the evaluated checkpoint's cell has none. `spectra_figures(table, space, out,
stats)` returns [(title, png)] and adds its numbers to `stats` (report.json); `spectra_html(stats)` is its summary
for index.html. Imports pyarrow, pandas, numpy, scipy (Kendall τ-b through `nares.analysis.stats`) and matplotlib
(through `nares.analysis.report`); must not import the store, Prefect, Ray or the app.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from nares.analysis.report import _plt, _save
from nares.analysis.stats import kendall_tau
from nares.spaces import SearchSpace

# ε-spectrum evaluations: name → (label, ε unit)
SPECTRA: dict[str, tuple[str, str]] = {"fgsm_eps": ("FGSM", "/255"), "pgd_eps": ("PGD", "/255"),
                                       "apgd_eps": ("APGD-CE", "/255"), "square_eps": ("Square", "/255"),
                                       "wsr": ("Wsr PGD", "")}
PROXIES: tuple[tuple[str, str, str], ...] = (("jacobian", "frobenius", "Jacobian ‖J‖F"),
                                             ("hessian", "top_eig", "Hessian λmax"))
PROXY_KEYS: tuple[str, ...] = ("test", "test@init", "train", "train@init")
CLEAN: tuple[tuple[str, str], ...] = (("confusion", "acc"), ("clean", "acc"))  # the clean accuracy, first found
CORRUPTION_EVALUATIONS: tuple[str, ...] = ("corruptions_cm", "corruptions")  # "<corruption>/<severity>" accuracy
METRICS: tuple[str, ...] = ("acc", "frobenius", "top_eig", "params")
INIT_CHECKPOINT = "init"  # `nares proxies`: proxies at initialisation alone (keys "<split>@init")
Column = tuple[str, str, str]  # (evaluation, metric, key)


def scalars(table: pa.Table, space: SearchSpace, checkpoint: str = "best",
            dataset: str | None = None) -> tuple[pd.DataFrame, str | None]:
    """(one row per arch_id, one column per (evaluation, metric, key) of the scalar values these analyses read;
    the dataset analysed). Complexity rows are read at any checkpoint."""
    wanted = [*SPECTRA, *(p[0] for p in PROXIES), *(c[0] for c in CLEAN), *CORRUPTION_EVALUATIONS, "complexity"]
    t = table.filter(pc.equal(table["space"], space.name))
    t = t.filter(pc.and_(pc.is_in(t["evaluation"].cast(pa.string()), value_set=pa.array(wanted)),
                         pc.is_in(t["metric"].cast(pa.string()), value_set=pa.array(list(METRICS)))))
    cols = ["dataset", "arch_id", "checkpoint", "evaluation", "metric", "key", "value"]
    df = pd.DataFrame({c: t.column(c).cast(pa.string()).to_pylist() if c not in ("arch_id", "value")
                       else t.column(c).to_numpy(zero_copy_only=False) for c in cols})
    if df.empty:
        return pd.DataFrame(), None
    analysed = df[df["evaluation"] != "complexity"]["dataset"].dropna().unique().tolist()
    if dataset is None:
        dataset = "cifar10" if "cifar10" in analysed else (sorted(analysed)[0] if analysed else None)
    cx = df["evaluation"] == "complexity"
    same = df["dataset"] == dataset
    at_init = df["evaluation"].isin([p[0] for p in PROXIES]) & (df["checkpoint"] == INIT_CHECKPOINT) \
        & df["key"].fillna("").str.endswith("@init")
    keep = (same & ~cx & ((df["checkpoint"] == checkpoint) | at_init)) | (cx & (same if (cx & same).any() else cx))
    df = df[keep & _scalar_key(df)]
    if df.empty:
        return pd.DataFrame(), dataset
    # a value at initialisation from the evaluated checkpoint's cell wins over one of `nares proxies`
    df = df.assign(_init=df["checkpoint"] == INIT_CHECKPOINT).sort_values("_init", kind="stable")
    df = df.drop_duplicates(["arch_id", "evaluation", "metric", "key"], keep="first")
    wide = df.pivot_table(index="arch_id", columns=["evaluation", "metric", "key"], values="value", aggfunc="last")
    return wide, dataset


def _scalar_key(df: pd.DataFrame) -> pd.Series:
    """Scalar cells only: no "/" in a spectrum's or proxy's key, one in a corruption's ("<corruption>/<severity>")."""
    slashes = df["key"].fillna("").str.count("/")
    corr = df["evaluation"].isin(CORRUPTION_EVALUATIONS)
    return (corr & (slashes == 1)) | (~corr & (slashes == 0))


def _column(wide: pd.DataFrame, col: Column) -> np.ndarray | None:
    if col not in wide.columns:
        return None
    v = wide[col].to_numpy(dtype=np.float64)
    return v if np.isfinite(v).sum() >= 2 else None


def _clean(wide: pd.DataFrame) -> tuple[Column, np.ndarray] | None:
    for ev, m in CLEAN:
        v = _column(wide, (ev, m, ""))
        if v is not None:
            return (ev, m, ""), v
    return None


def _spectra(wide: pd.DataFrame) -> dict[str, list[str]]:
    """{spectrum evaluation: its ε keys ascending} of the spectra present."""
    out: dict[str, list[str]] = {}
    for ev in SPECTRA:
        keys = []
        for e, m, k in wide.columns:
            if e == ev and m == "acc" and k:
                try:
                    float(k)
                except ValueError:
                    continue
                if _column(wide, (e, m, k)) is not None:
                    keys.append(k)
        if keys:
            out[ev] = sorted(keys, key=float)
    return out


def _label(ev: str, key: str) -> str:
    name, unit = SPECTRA[ev]
    return f"{name} {key}{unit}"


def _tau_matrix(rows: list[np.ndarray], cols: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    tau = np.array([[kendall_tau(r, c) for c in cols] for r in rows], dtype=np.float64)
    n = np.array([[int((np.isfinite(r) & np.isfinite(c)).sum()) for c in cols] for r in rows], dtype=np.int64)
    return tau, n


def _heatmap(tau: np.ndarray, rows: list[str], cols: list[str], title: str, out: Path, name: str,
             row_groups: list[int] | None = None) -> str:
    """τ as a heat map with each value printed; a line above each row index of `row_groups`."""
    plt = _plt()
    h, w = tau.shape
    fig, ax = plt.subplots(figsize=(max(6.0, 0.62 * w + 3.5), max(2.6, 0.34 * h + 2.2)))
    im = ax.imshow(np.ma.masked_invalid(tau), cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    for i in range(h):
        for j in range(w):
            v = tau[i, j]
            ax.text(j, i, "–" if np.isnan(v) else f"{v:.2f}", ha="center", va="center", fontsize=8,
                    color="white" if abs(v) > 0.6 else "black")
    ax.set_xticks(range(w), cols, rotation=30 if max(map(len, cols)) > 8 else 0, ha="right", fontsize=8)
    ax.set_yticks(range(h), rows, fontsize=8)
    for start in row_groups or []:
        ax.axhline(start - 0.5, color="black", lw=1.2)
    fig.colorbar(im, ax=ax, label="Kendall τ-b", fraction=0.04, pad=0.03)
    ax.set_title(title, fontsize=10)
    return _save(fig, out, name)


def _fig_proxy_attack(wide: pd.DataFrame, out: Path, stats: dict) -> str | None:
    rows, row_labels = [], []
    for ev, metric, label in PROXIES:
        for key in PROXY_KEYS:
            v = _column(wide, (ev, metric, key))
            if v is not None:
                rows.append(v)
                row_labels.append(f"{label} [{key}]")
    spectra = _spectra(wide)
    if not rows or not spectra:
        return None
    cols, col_labels, groups = [], [], []
    clean = _clean(wide)
    if clean is not None:
        cols.append(clean[1])
        col_labels.append("clean")
    for ev, keys in spectra.items():
        groups.append(len(cols))
        cols += [wide[(ev, "acc", k)].to_numpy(dtype=np.float64) for k in keys]
        col_labels += [_label(ev, k) for k in keys]
    tau, n = _tau_matrix(rows, cols)
    stats["kendall_proxy_attack"] = {"rows": row_labels, "columns": col_labels, "tau": tau.tolist(),
                                     "pairs": int(n.min()), "architectures": len(wide)}
    counts = f"{n.min()}" if n.min() == n.max() else f"{n.min()}–{n.max()}"
    return _heatmap(tau.T, col_labels, row_labels, "Kendall τ of the proxies (columns) with clean and robust "
                    f"accuracy (rows; ε in 1/255)\n{counts} architectures per cell", out,
                    "kendall_proxy_attack.png", groups)


def _corruption_columns(wide: pd.DataFrame) -> tuple[str, dict[str, dict[int, str]]] | None:
    for ev in CORRUPTION_EVALUATIONS:
        grid: dict[str, dict[int, str]] = {}
        for e, m, k in wide.columns:
            name, _, sev = k.partition("/")
            if e == ev and m == "acc" and sev.isdigit() and _column(wide, (e, m, k)) is not None:
                grid.setdefault(name, {})[int(sev)] = k
        if grid:
            return ev, grid
    return None


def _fig_clean_corruption(wide: pd.DataFrame, out: Path, stats: dict) -> str | None:
    clean = _clean(wide)
    corr = _corruption_columns(wide)
    if clean is None or corr is None:
        return None
    ev, grid = corr
    names = sorted(grid)
    sevs = sorted({s for g in grid.values() for s in g})
    tau = np.full((len(names), len(sevs)), np.nan)
    for i, name in enumerate(names):
        for j, s in enumerate(sevs):
            if s in grid[name]:
                tau[i, j] = kendall_tau(clean[1], wide[(ev, "acc", grid[name][s])].to_numpy(dtype=np.float64))
    stats["kendall_clean_corruption"] = {"clean": "/".join(clean[0][:2]), "corruptions": ev, "rows": names,
                                         "severities": sevs, "tau": tau.tolist()}
    return _heatmap(tau.T, [f"severity {s}" for s in sevs], names,
                    f"Kendall τ of the clean accuracy ({clean[0][0]}) with the accuracy under each corruption",
                    out, "kendall_clean_corruption.png")


def _fig_curves(wide: pd.DataFrame, out: Path, stats: dict) -> str | None:
    spectra = _spectra(wide)
    if not spectra:
        return None
    from matplotlib.collections import LineCollection

    clean = _clean(wide)
    plt = _plt()
    ncols = min(2, len(spectra))
    nrows = -(-len(spectra) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.5 * ncols, 4.4 * nrows), squeeze=False)
    for ax in axes.ravel()[len(spectra):]:
        ax.set_visible(False)
    curves: dict[str, Any] = {}
    for ax, (ev, keys) in zip(axes.ravel(), spectra.items(), strict=False):
        m = np.column_stack([wide[(ev, "acc", k)].to_numpy(dtype=np.float64) for k in keys])
        labels = list(keys)
        if clean is not None:
            m = np.column_stack([clean[1], m])
            labels = ["0 (clean)", *labels]
        m = m[np.isfinite(m).all(axis=1)]
        if len(m) == 0:
            continue
        x = np.arange(m.shape[1])
        alpha = float(np.clip(20.0 / len(m), 0.02, 0.4))
        ax.add_collection(LineCollection([np.column_stack([x, r]) for r in m], colors="tab:blue", alpha=alpha,
                                         linewidths=0.7))
        mean, std = m.mean(axis=0), m.std(axis=0)
        ax.fill_between(x, np.clip(mean - std, 0, 100), np.clip(mean + std, 0, 100), color="tab:orange", alpha=0.3,
                        label="mean ± 1 std")
        ax.plot(x, mean, color="tab:red", lw=2, marker="o", ms=3, label="mean")
        ax.set_xticks(x, labels, rotation=45 if len(x) > 6 else 0, fontsize=8)
        ax.set_xlim(-0.3, len(x) - 0.7)
        ax.set_ylim(0, 100)
        ax.set_ylabel("accuracy (%)")
        ax.set_xlabel(f"ε{' (1/255)' if SPECTRA[ev][1] else ''}")
        ax.set_title(f"{SPECTRA[ev][0]} ({ev}): {len(m)} architectures", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper right")
        off = 1 if clean is not None else 0
        curves[ev] = {"eps": [float(k) for k in keys], "mean": mean[off:].tolist(), "std": std[off:].tolist(),
                      "min": m.min(axis=0)[off:].tolist(), "max": m.max(axis=0)[off:].tolist(),
                      "architectures": len(m)}
        if off:
            curves[ev]["clean"] = {"mean": float(mean[0]), "std": float(std[0])}
    if not curves:
        _plt().close(fig)
        return None
    fig.suptitle("Robust accuracy vs ε: every architecture (faint), the mean and ±1 std")
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    stats["robust_accuracy_curves"] = curves
    return _save(fig, out, "robust_accuracy_vs_eps.png")


def equal_params_spread(params: np.ndarray, values: np.ndarray, archs: list[str]) -> dict[str, Any] | None:
    """Per exact parameter count with at least two architectures: n, min, max, mean of `values`; the widest group
    (largest max − min, then the larger group, then the smaller count) with its min and max architectures."""
    ok = np.isfinite(params) & np.isfinite(values)
    p, v = params[ok].astype(np.int64), values[ok]
    a = [x for x, k in zip(archs, ok, strict=True) if k]
    groups = []
    for count in np.unique(p):
        idx = np.flatnonzero(p == count)
        if len(idx) < 2:
            continue
        lo, hi = idx[np.argmin(v[idx])], idx[np.argmax(v[idx])]
        groups.append({"params": int(count), "n": len(idx), "min": float(v[lo]), "max": float(v[hi]),
                       "mean": float(v[idx].mean()), "spread": float(v[hi] - v[lo]), "min_arch": a[lo],
                       "max_arch": a[hi]})
    if not groups:
        return None
    widest = max(groups, key=lambda g: (g["spread"], g["n"], -g["params"]))
    return {"groups": groups, "widest": widest, "architectures": int(ok.sum())}


def _fig_spread(wide: pd.DataFrame, archs: pd.Series, out: Path, stats: dict) -> str | None:
    spectra = _spectra(wide)
    params = _column(wide, ("complexity", "params", ""))
    if not spectra or params is None:
        return None
    cols = [(ev, "acc", k) for ev, keys in spectra.items() for k in keys]
    mean_adv = wide[cols].to_numpy(dtype=np.float64).mean(axis=1)  # NaN unless every cell is present
    names = [str(archs.get(i, i)) for i in wide.index]
    spread = equal_params_spread(params, mean_adv, names)
    if spread is None:
        return None
    per_eval = {}
    for ev, keys in spectra.items():
        s = equal_params_spread(params, wide[[(ev, "acc", k) for k in keys]].to_numpy(dtype=np.float64).mean(axis=1),
                                names)
        if s is not None:
            per_eval[ev] = s["widest"]
    stats["equal_params_spread"] = {
        "measure": "mean adversarial accuracy (%): mean over " + ", ".join(
            f"{ev} ({len(keys)} ε)" for ev, keys in spectra.items()),
        **spread, "per_evaluation": per_eval}
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 5))
    ok = np.isfinite(params) & np.isfinite(mean_adv)
    ax.scatter(params[ok] / 1e6, mean_adv[ok], s=6 if ok.sum() > 500 else 18, alpha=0.35, color="tab:blue",
               linewidths=0, label="architectures")
    g = spread["groups"]
    x = np.array([d["params"] for d in g]) / 1e6
    ax.vlines(x, [d["min"] for d in g], [d["max"] for d in g], color="black", lw=1, label="min–max per params value")
    ax.scatter(x, [d["mean"] for d in g], marker="_", s=120, color="black", label="mean per params value")
    w = spread["widest"]
    ax.vlines([w["params"] / 1e6], [w["min"]], [w["max"]], color="tab:red", lw=2.5,
              label=f"widest: {w['min']:.1f}–{w['max']:.1f} % at {w['params']:,} params (n = {w['n']})")
    ax.set_xlabel("Params (M)")
    ax.set_ylabel("mean adversarial accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Robustness spread among architectures of equal parameter count", fontsize=10)
    return _save(fig, out, "equal_params_spread.png")


def spectra_figures(table: pa.Table, space: SearchSpace, out: str | Path, stats: dict, *, checkpoint: str = "best",
                    dataset: str | None = None) -> list[tuple[str, str]]:
    """The sections the table's rows allow, as [(title, png)]; their numbers go to `stats` (report.json)."""
    out = Path(out)
    wide, ds = scalars(table, space, checkpoint, dataset)
    if wide.empty:
        return []
    archs = _arch_names(table, space)
    figures = [
        ("Kendall τ: proxies × (attack, ε)", _fig_proxy_attack(wide, out, stats)),
        ("Kendall τ: clean × corruption", _fig_clean_corruption(wide, out, stats)),
        ("Robust accuracy vs ε", _fig_curves(wide, out, stats)),
        ("Robustness spread at equal parameter count", _fig_spread(wide, archs, out, stats)),
    ]
    made = [(t, f) for t, f in figures if f]
    if made:
        stats["robustness_dataset"] = ds
    return made


def _arch_names(table: pa.Table, space: SearchSpace) -> pd.Series:
    t = table.filter(pc.equal(table["space"], space.name)).select(["arch_id", "arch"])
    ids = t.column("arch_id").to_numpy(zero_copy_only=False)
    archs = t.column("arch").cast(pa.string()).to_pylist()
    return pd.Series(dict(zip(ids.tolist(), archs, strict=True)))


def spectra_html(stats: dict) -> str:
    """A short HTML summary of the robustness sections (empty when none was drawn)."""
    parts = []
    s = stats.get("equal_params_spread")
    if s:
        w = s["widest"]
        rows = "".join(f"<tr><td>{html.escape(ev)}</td><td>{d['params']:,}</td><td>{d['n']}</td><td>{d['min']:.2f}</td>"
                       f"<td>{d['max']:.2f}</td><td>{d['spread']:.2f}</td></tr>" for ev, d in s["per_evaluation"].items())
        parts.append(
            f"<h2>Robustness summary</h2><p>{html.escape(s['measure'])}. Among "
            f"{len(s['groups'])} parameter counts held by at least two architectures, the widest spread is "
            f"<b>{w['min']:.2f} % to {w['max']:.2f} %</b> (mean {w['mean']:.2f} %) at {w['params']:,} parameters "
            f"(n = {w['n']}): {html.escape(w['min_arch'])} vs {html.escape(w['max_arch'])}.</p>"
            "<table><tr><th>spectrum (mean over ε)</th><th>params</th><th>n</th><th>min %</th><th>max %</th>"
            f"<th>spread</th></tr>{rows}</table>")
    k = stats.get("kendall_proxy_attack")
    if k:
        flat = [(abs(v), v, r, c) for r, row in zip(k["rows"], k["tau"], strict=True)
                for c, v in zip(k["columns"], row, strict=True) if v is not None and np.isfinite(v)]
        if flat:
            _, v, r, c = max(flat)
            parts.append(f"<p>Strongest proxy rank correlation: {html.escape(r)} with {html.escape(c)}, "
                         f"τ = {v:+.3f}.</p>")
    return "".join(parts)
