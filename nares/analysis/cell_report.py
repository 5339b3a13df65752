"""The space-specific figures of the results report for the cell spaces (PROTOCOL §7.1, §7.4):

- nb201: the objective against the number of edges carrying each op (0..6), and against the number of
  parameter-free edges (`none`, `skip_connect`, `avg_pool_3x3`);
- robnet: the objective against the density D = Σα/|E| (with Kendall τ), against the convolutions on direct and
  on skip edges, and the paper's linear classifier separating the top-k from the bottom-k architectures by their α
  bits (k = min(300, n/2)): a ridge least-squares classifier on the centred bits, its training accuracy and its
  weight per (edge, op).

`SPACE_FIGURES[space.name](df, archs, out, y, stats)` returns [(title, png)]; `df` holds the objective column `y`.
Imports numpy and matplotlib (through `nares.analysis.report`); not the store, Prefect, Ray or the app.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nares.analysis.report import _plt, _save, _scatter
from nares.analysis.stats import kendall_tau

TOP_K = 300


def _line_by_count(ax, counts: np.ndarray, values: np.ndarray, label: str) -> None:
    xs = sorted(set(counts.tolist()))
    ax.errorbar(xs, [values[counts == x].mean() for x in xs], yerr=[values[counts == x].std() for x in xs],
                marker="o", capsize=3, label=label)


def nb201_figures(df: pd.DataFrame, archs: Sequence[Any], out: Path, y: str, stats: dict) -> list[tuple[str, str]]:
    from nares.spaces.nb201 import OPS, n_param_free

    v = df[y].to_numpy(dtype=np.float64)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    per_op = {}
    for op in OPS:
        counts = np.array([a.ops.count(op) for a in archs])
        _line_by_count(ax, counts, v, op)
        per_op[op] = {str(c): float(v[counts == c].mean()) for c in sorted(set(counts.tolist()))}
    ax.set_xlabel("edges carrying the op (of 6)")
    ax.set_ylabel(f"{y} (%)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.suptitle(f"{y} by the number of edges of each op (mean ± std)")
    stats["by_op_count"] = per_op
    first = _save(fig, out, "by_op_count.png")
    free = np.array([n_param_free(a) for a in archs])
    fig, ax = plt.subplots(figsize=(7, 4.5))
    values = sorted(set(free.tolist()))
    ax.boxplot([v[free == k] for k in values], tick_labels=[str(k) for k in values], showfliers=False)
    ax.set_xlabel("parameter-free edges (none, skip_connect, avg_pool_3x3)")
    ax.set_ylabel(f"{y} (%)")
    ax.grid(alpha=0.3)
    fig.suptitle(f"{y} by the number of parameter-free edges")
    stats["by_param_free_edges"] = {str(k): float(v[free == k].mean()) for k in values}
    return [("By the number of edges of each op", first),
            ("By the number of parameter-free edges", _save(fig, out, "by_param_free_edges.png"))]


def linear_classifier(bits: np.ndarray, values: np.ndarray, k: int = TOP_K, ridge: float = 1e-3
                      ) -> dict[str, Any]:
    """The top-k (label +1) vs bottom-k (−1) architectures by `values`, separated by w·(bits − mean) + b fitted by
    ridge least squares: {k, accuracy (on those 2k), weights (one per bit)}; k is cut to n/2."""
    k = min(k, len(values) // 2)
    if k < 1:
        raise ValueError("the linear classifier needs at least two architectures")
    order = np.argsort(values, kind="stable")
    idx = np.r_[order[-k:], order[:k]]
    x = bits[idx].astype(np.float64)
    x = x - x.mean(axis=0)
    t = np.r_[np.ones(k), -np.ones(k)]
    w = np.linalg.solve(x.T @ x + ridge * np.eye(x.shape[1]), x.T @ t)
    b = float(t.mean())
    accuracy = float(np.mean(np.sign(x @ w + b) == t))
    return {"k": int(k), "accuracy": accuracy, "weights": w.tolist()}


def robnet_figures(df: pd.DataFrame, archs: Sequence[Any], out: Path, y: str, stats: dict) -> list[tuple[str, str]]:
    from nares.spaces.robnet import BITS, EDGE_CODES, N_EDGES, conv_counts, density

    v = df[y].to_numpy(dtype=np.float64)
    d = np.array([density(a) for a in archs])
    convs = np.array([conv_counts(a) for a in archs])
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    _scatter(axes[0], d, v, "density D = Σα/|E|", f"{y} (%)")
    _scatter(axes[1], convs[:, 0], v, "convolutions on direct edges", f"{y} (%)")
    _scatter(axes[2], convs[:, 1], v, "convolutions on skip edges", f"{y} (%)")
    fig.suptitle(f"{y} vs density and convolution placement")
    stats["kendall_tau_with_objective"] = {"density": kendall_tau(d, v),
                                           "direct_convs": kendall_tau(convs[:, 0].astype(float), v),
                                           "skip_convs": kendall_tau(convs[:, 1].astype(float), v)}
    figures = [("Density and convolution placement", _save(fig, out, "density_and_placement.png"))]
    if len(archs) >= 2:
        bits = np.array([a.bits() for a in archs])
        clf = linear_classifier(bits, v)
        stats["linear_classifier"] = {"k": clf["k"], "accuracy": clf["accuracy"]}
        w = np.asarray(clf["weights"]).reshape(-1, BITS).mean(axis=0)  # cell-free: mean over cells
        fig, ax = plt.subplots(figsize=(12, 4))
        labels = [f"e{e}:{'id' if j == 0 else 'conv'}" for e in range(N_EDGES) for j in range(2)]
        ax.bar(range(BITS), w, color=["tab:orange" if j == 0 else "tab:blue" for _ in range(N_EDGES) for j in range(2)])
        ax.set_xticks(range(BITS), labels, rotation=90, fontsize=7)
        ax.set_ylabel("weight (top vs bottom)")
        ax.grid(alpha=0.3)
        fig.suptitle(f"Linear classifier, top-{clf['k']} vs bottom-{clf['k']} by {y}: training accuracy "
                     f"{100 * clf['accuracy']:.1f} % (edge codes {'/'.join(EDGE_CODES)})")
        figures.append(("Top vs bottom linear classifier", _save(fig, out, "linear_classifier.png")))
    return figures


SPACE_FIGURES: dict[str, Callable[..., list[tuple[str, str]]]] = {"nb201": nb201_figures, "robnet": robnet_figures}
