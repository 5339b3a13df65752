"""BANANAS' predictor: an ensemble of small MLPs on the 30-dim one-hot encoding, trained as one batch.

The members are independent MLPs (own initialisation) whose weights are stacked on a leading
ensemble axis and trained together with Adam on the mean squared error of standardised targets.
It is written in numpy with explicit gradients: for a network this small, numpy's per-operation
cost is a fraction of an autograd framework's (measured 2.3× faster than eager torch here).

This is the default variant's predictor, much smaller than the published one. The official NARes
BANANAS (PROTOCOL §9; reproduced by `nares.nas.published_mlp`) trains 5 MLPs of 20 hidden layers × 32
units from scratch every round: 500 epochs of mini-batches of 32, Adam (lr 1e-3), on the mean absolute
error of the validation error plus 0.2 × the L1 norm of the output layer's weights. Here: 3 hidden
layers of 20 ReLU units on standardised targets with the squared error, trained incrementally —
`FIRST_STEPS` full-batch Adam steps (lr 0.01) in the first round, then `ROUND_STEPS` more steps on the
grown data in each later round (warm start). This keeps 400 searches to minutes on two cores.
"""

from __future__ import annotations

import itertools

import numpy as np

HIDDEN: tuple[int, ...] = (20, 20, 20)
FIRST_STEPS = 200
ROUND_STEPS = 30
LR = 0.01
_BETAS, _EPS = (0.9, 0.999), 1e-8


class MLPEnsemble:
    """`members` ReLU MLPs `n_in → hidden… → 1` with stacked weights (members, fan_in, fan_out)."""

    def __init__(self, n_in: int, members: int, seed: int, hidden: tuple[int, ...] = HIDDEN, lr: float = LR):
        rng = np.random.default_rng(seed)
        sizes = [n_in, *hidden, 1]
        self.weights = [rng.uniform(-1, 1, (members, a, b)) * np.sqrt((6.0 if b != 1 else 1.0) / a)
                        for a, b in itertools.pairwise(sizes)]
        self.biases = [np.zeros((members, 1, b)) for b in sizes[1:]]
        self._m = [np.zeros_like(p) for p in self.params]
        self._v = [np.zeros_like(p) for p in self.params]
        self._t = 0
        self.lr = lr
        self.members = members
        self._scale = (0.0, 1.0)

    @property
    def params(self) -> list[np.ndarray]:
        return self.weights + self.biases

    def _forward(self, x: np.ndarray) -> list[np.ndarray]:
        acts = [np.broadcast_to(x, (self.members, *x.shape))]
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            z = acts[-1] @ w + b
            acts.append(z if i == last else np.maximum(z, 0.0))
        return acts

    def fit(self, x: np.ndarray, y: np.ndarray, steps: int) -> None:
        """`steps` more full-batch Adam steps on (x, y); targets are standardised with their mean/std."""
        mu, sd = float(y.mean()), float(y.std()) or 1.0
        self._scale = (mu, sd)
        target = ((y - mu) / sd)[None, :, None]
        b1, b2 = _BETAS
        for _ in range(steps):
            self._t += 1
            acts = self._forward(x)
            g = 2.0 * (acts[-1] - target) / len(x)
            grads_w, grads_b = [], []
            for i in range(len(self.weights) - 1, -1, -1):
                grads_w.append(acts[i].transpose(0, 2, 1) @ g)
                grads_b.append(g.sum(axis=1, keepdims=True))
                if i:
                    g = (g @ self.weights[i].transpose(0, 2, 1)) * (acts[i] > 0)
            grads = grads_w[::-1] + grads_b[::-1]
            c1, c2 = 1 - b1**self._t, 1 - b2**self._t
            for p, gr, m, v in zip(self.params, grads, self._m, self._v, strict=True):
                m *= b1
                m += (1 - b1) * gr
                v *= b2
                v += (1 - b2) * gr * gr
                p -= self.lr * (m / c1) / (np.sqrt(v / c2) + _EPS)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predictions of every member, shape (members, n), in the units of the last fitted targets."""
        mu, sd = self._scale
        return self._forward(x)[-1][..., 0] * sd + mu
