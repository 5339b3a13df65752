"""The published BANANAS predictor in numpy: `members` MLPs stacked on a leading axis, trained together.

Each member: `layers` hidden Linear+ReLU layers of `width` units and a Linear output, Xavier-uniform
weights and zero biases (as the official `FeedforwardNet`), trained from scratch with Adam (betas
0.9/0.99, eps 1e-8) for `epochs` epochs of shuffled mini-batches (its own permutation per member) on
the mean absolute error plus `l1_reg`·‖output weights‖₁, in float32 — the official `MLPPredictor`.
"""

from __future__ import annotations

import itertools

import numpy as np

_B1, _B2, _EPS = 0.9, 0.99, 1e-8


class MLPEnsemble:
    def __init__(self, n_in: int, members: int, layers: int, width: int, seed: int):
        rng = np.random.default_rng(seed)
        sizes = [n_in, *([width] * layers), 1]
        shapes = [(members, a, b) for a, b in itertools.pairwise(sizes)]
        n_w = sum(int(np.prod(s)) for s in shapes)
        n_b = sum(s[0] * s[2] for s in shapes)
        self.flat = np.zeros(n_w + n_b, dtype=np.float32)  # every parameter, so Adam is 6 array operations
        self.grad = np.zeros_like(self.flat)
        self.w, self.b, self.gw, self.gb = [], [], [], []
        at = 0
        for m, a, b in shapes:
            k = m * a * b
            self.w.append(self.flat[at:at + k].reshape(m, a, b))
            self.gw.append(self.grad[at:at + k].reshape(m, a, b))
            limit = np.sqrt(6.0 / (a + b))
            self.w[-1][...] = rng.uniform(-limit, limit, (m, a, b))
            at += k
        for m, _, b in shapes:
            self.b.append(self.flat[at:at + m * b].reshape(m, 1, b))
            self.gb.append(self.grad[at:at + m * b].reshape(m, 1, b))
            at += m * b
        self.members = members
        self.rng = rng

    def _forward(self, x: np.ndarray) -> list[np.ndarray]:
        acts = [x]
        last = len(self.w) - 1
        for i, (w, b) in enumerate(zip(self.w, self.b, strict=True)):
            z = acts[-1] @ w + b
            acts.append(z if i == last else np.maximum(z, 0, out=z))
        return acts

    def fit(self, x: np.ndarray, y: np.ndarray, *, epochs: int, batch_size: int, lr: float, l1_reg: float) -> None:
        n = len(x)
        x, y = x.astype(np.float32), y.astype(np.float32)
        m1 = np.zeros_like(self.flat)
        m2 = np.zeros_like(self.flat)
        t = 0
        for _ in range(epochs):
            perm = np.argsort(self.rng.random((self.members, n)), axis=1)
            for lo in range(0, n, batch_size):
                idx = perm[:, lo:lo + batch_size]
                xb, yb = x[idx], y[idx][..., None]  # (members, B, n_in), (members, B, 1)
                acts = self._forward(xb)
                g = np.sign(acts[-1] - yb) / idx.shape[1]  # d MAE / d prediction
                for i in range(len(self.w) - 1, -1, -1):
                    np.matmul(acts[i].transpose(0, 2, 1), g, out=self.gw[i])
                    self.gb[i][...] = g.sum(axis=1, keepdims=True)
                    if i:
                        g = (g @ self.w[i].transpose(0, 2, 1)) * (acts[i] > 0)
                self.gw[-1] += l1_reg * np.sign(self.w[-1])  # the L1 term on the output layer's weights
                t += 1
                m1 *= _B1
                m1 += (1 - _B1) * self.grad
                m2 *= _B2
                m2 += (1 - _B2) * self.grad * self.grad
                step = (lr / (1 - _B1**t)) * m1 / (np.sqrt(m2 / (1 - _B2**t)) + _EPS)
                self.flat -= step

    def predict(self, x: np.ndarray) -> np.ndarray:
        """(members, n) predictions."""
        xb = np.broadcast_to(x.astype(np.float32), (self.members, *x.shape))
        return self._forward(xb)[-1][..., 0]
