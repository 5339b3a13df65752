"""Principal component analysis by SVD, with a deterministic sign convention."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PCA:
    components: np.ndarray  # (k, d) unit vectors, largest-magnitude entry positive
    explained_variance_ratio: np.ndarray  # (k,)
    mean: np.ndarray  # (d,)
    scale: np.ndarray  # (d,) divisor applied after centring (1 where not standardised)
    scores: np.ndarray  # (n, k) projections of the fitted points

    def transform(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, dtype=np.float64) - self.mean) / self.scale) @ self.components.T


def pca(x: np.ndarray, n_components: int = 2, *, standardize: bool = False) -> PCA:
    """Fit PCA on the rows of `x` (centred; divided by each column's std when `standardize`)."""
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=0)
    scale = x.std(axis=0) if standardize else np.ones(x.shape[1])
    scale = np.where(scale > 0, scale, 1.0)
    z = (x - mean) / scale
    _, s, vt = np.linalg.svd(z, full_matrices=False)
    comps = vt[:n_components]
    signs = np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(axis=1)])
    comps = comps * signs[:, None]
    var = s**2
    ratio = var[:n_components] / var.sum() if var.sum() > 0 else np.zeros(len(comps))
    return PCA(comps, ratio, mean, scale, z @ comps.T)
