"""Synthetic NARes records with planted, documented structure, for tests and benchmarks.

The records follow the published layout (PROTOCOL §4: percent accuracies, Params/MACs in millions)
and every protocol invariant, so code that reads real releases can be tested where the right answer
is known. Imports only numpy, the search space, complexity and `nares.records`;
`synthetic_manifest` also needs pyarrow and the table schemas.

Planted structure (all values drawn in fractions, then converted by the record builder):

- Validation PGD-20 accuracy at the best epoch (the NAS objective, `VAL_PGD_ACC`) is
  ``VAL_PGD_BASE - Σ_k PENALTY_WEIGHTS[k] · (i_k - o_k)² / 16 + u`` where ``i_k`` is the index
  (0..4) of coordinate k of the encoding in DEPTHS/WIDTHS, ``o_k`` the index of the same
  coordinate of `PLANTED_OPTIMUM`, and ``u`` seeded noise uniform in ±`VAL_NOISE_BOUND`. The
  noise bound is below half the smallest one-step improvement, so `PLANTED_OPTIMUM` is the unique
  maximiser and every other architecture has a strictly better neighbour (hill-climbing always
  reaches it). `planted_val_pgd(arch)` gives the noise-free value.
- Best epoch = the unique argmax of the validation CW-40 curve, planted after the first lr drop
  (robust overfitting); validation CW at that epoch = VAL_PGD − 0.012…0.016.
- Test metrics: PGD = VAL_PGD + 0.06 + 0.015·z + noise (z = log-params scaled to [0, 1]);
  clean ≥ FGSM ≥ PGD ≥ AA and CW ≥ AA; every stable accuracy ≥ its robust accuracy;
  Lipschitz estimates fall as robustness rises; corruption accuracy ≤ clean accuracy.
- Params and MACs are exact (`nares.spaces.wrn`); arch_ids are the default MAC-ordered ids.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Sequence

import numpy as np

from nares.constants import CHECKPOINT_KINDS, CORRUPTIONS, SEVERITIES
from nares.errors import NaresError
from nares.records import build_record
from nares.spaces import wrn as complexity
from nares.spaces.wrn import N_ARCHS, Arch, ArchIndex, choice_indices, random_archs

PLANTED_OPTIMUM = Arch(9, 16, 7, 14, 11, 12)
VAL_PGD_BASE = 0.48
PENALTY_WEIGHTS: tuple[float, ...] = (0.012, 0.024, 0.012, 0.024, 0.012, 0.024)
VAL_NOISE_BOUND = 0.0003
GPU_TYPE = "synthetic"
_DIGITS = 6  # fractions are rounded to 1e-6 so percentages are exact to 1e-4


def planted_val_pgd(arch: Arch | str) -> float:
    """The noise-free validation PGD-20 accuracy (fraction) of `arch`; its unique argmax is PLANTED_OPTIMUM."""
    idx, opt = choice_indices(Arch.parse(arch)), choice_indices(PLANTED_OPTIMUM)
    return VAL_PGD_BASE - sum(w * (i - o) ** 2 / 16 for w, i, o in zip(PENALTY_WEIGHTS, idx, opt, strict=True))


def _select(n: int, seed: int, archs: Iterable[Arch | str] | None, index: ArchIndex) -> list[int]:
    if archs is not None:
        chosen = sorted({index.id_of(a) for a in archs})
    elif n == N_ARCHS:
        chosen = list(range(1, N_ARCHS + 1))
    elif 0 < n < N_ARCHS:
        chosen = sorted(index.id_of(a) for a in random_archs(n, seed))
    else:
        raise NaresError(f"n={n!r} is not in 1..{N_ARCHS}")
    return chosen


def _curves(rng: np.random.Generator, n: int, epochs: int, val_pgd: np.ndarray) -> tuple[dict, np.ndarray]:
    """Per-epoch logs for `n` architectures whose best epoch reaches `val_pgd` (fractions)."""
    t = np.arange(epochs)[None, :]
    first_drop = max(0, min(epochs - 1, round(0.75 * epochs)))
    best = np.minimum(epochs - 1, first_drop + rng.integers(0, 3, size=n))[:, None]
    gap_cw = 0.012 + rng.uniform(0, 0.004, size=(n, 1))
    cw_best = val_pgd[:, None] - gap_cw
    rise = (1 - np.exp(-3 * (t + 1) / (best + 1))) / (1 - np.exp(-3.0))
    before = cw_best * (0.6 + 0.38 * rise) + rng.normal(0, 0.003, size=(n, epochs))
    after = cw_best - 0.0015 * (t - best) - np.abs(rng.normal(0, 0.002, size=(n, epochs)))
    cw = np.where(t < best, before, after)
    cw = np.clip(np.where(t == best, cw_best, np.minimum(cw, cw_best - 1e-4)), 0, 1)
    pgd = np.clip(cw + gap_cw * (1 + 0.1 * rng.normal(size=(n, epochs))), 0, 1)
    pgd = np.where(t == best, val_pgd[:, None], np.maximum(pgd, cw))
    val_acc = np.clip(pgd + 0.30 + rng.normal(0, 0.01, size=(n, epochs)), pgd, 1)
    lr_phase = np.searchsorted([round(0.75 * epochs), round(0.9 * epochs)], t, side="right")
    train_acc = np.clip(0.25 + 0.3 * rise + 0.08 * lr_phase + rng.normal(0, 0.005, size=(n, epochs)), 0, 1)
    logs = {
        "train_loss": 2.2 - 1.6 * train_acc,
        "train_acc": train_acc,
        "val_loss": 0.2 + 2.0 * (1 - val_acc),
        "val_acc": val_acc,
        "pgd": pgd,
        "pgd_stable": np.clip(pgd + 0.12 + rng.uniform(0, 0.03, size=(n, epochs)), pgd, 1),
        "pgd_lip": 4 + 40 * (0.6 - pgd) + rng.uniform(0, 1, size=(n, epochs)),
        "pgd_loss": 0.8 + 2.0 * (1 - pgd),
        "cw": cw,
        "cw_stable": np.clip(cw + 0.12 + rng.uniform(0, 0.03, size=(n, epochs)), cw, 1),
        "cw_lip": 4 + 40 * (0.6 - cw) + rng.uniform(0, 1, size=(n, epochs)),
        "cw_loss": 0.1 + 1.5 * (1 - cw),
    }
    return {k: np.round(v, _DIGITS) for k, v in logs.items()}, best[:, 0]


def _test_metrics(rng: np.random.Generator, val_pgd: np.ndarray, z: np.ndarray) -> dict[str, np.ndarray]:
    n = len(val_pgd)
    u = lambda lo, hi: rng.uniform(lo, hi, size=n)  # noqa: E731
    pgd = val_pgd + 0.06 + 0.015 * z + u(-0.005, 0.005)
    cw = pgd - 0.012 + u(-0.003, 0.003)
    aa = np.minimum(pgd, cw) - 0.025 - u(0, 0.005)
    fgsm = pgd + 0.06 + u(0, 0.01)
    clean = np.minimum(fgsm + 0.22 + 0.02 * z + u(0, 0.01), 1)
    m = {
        "test_clean_acc": clean,
        "test_loss": 0.2 + 1.5 * (1 - clean) + u(0, 0.02),
        "Linf_fgsm_acc": fgsm,
        "Linf_fgsm_stable": np.minimum(fgsm + 0.1 + u(0, 0.03), 1),
        "Linf_pgd_acc": pgd,
        "Linf_pgd_stable": np.minimum(pgd + 0.12 + u(0, 0.03), 1),
        "Linf_pgd_lip": 4 + 40 * (0.6 - pgd) + u(0, 1),
        "Linf_cw_acc": cw,
        "Linf_cw_stable": np.minimum(cw + 0.12 + u(0, 0.03), 1),
        "Linf_cw_lip": 4 + 40 * (0.6 - cw) + u(0, 1),
        "Linf_aa_acc": aa,
    }
    return {k: np.round(v, _DIGITS) for k, v in m.items()}


def _corruption_cells(rng: np.random.Generator, clean: np.ndarray) -> np.ndarray:
    """Accuracy (n, 19, 5): clean accuracy minus a per-corruption difficulty growing with severity."""
    difficulty = np.linspace(0.02, 0.30, len(CORRUPTIONS))[None, :, None]
    sev = np.asarray(SEVERITIES, dtype=float)[None, None, :] / len(SEVERITIES)
    drop = difficulty * sev + rng.uniform(0, 0.01, size=(len(clean), len(CORRUPTIONS), len(SEVERITIES)))
    return np.round(np.clip(clean[:, None, None] - drop, 0.0, clean[:, None, None]), _DIGITS)


def synthetic_records(
    n: int = N_ARCHS,
    *,
    seed: int = 0,
    epochs: int = 100,
    archs: Sequence[Arch | str] | None = None,
    corruptions: bool = True,
    width_base: int = 16,
) -> list[dict]:
    """Published-layout records (sorted by arch_id) with the planted structure of the module docstring.

    `archs` selects the architectures (default: `n` drawn with `seed`, all 15,625 when n=15,625).
    A given (seed, epochs) gives every architecture the same values whatever subset is asked for.
    `corruptions=False` leaves `corruptions` empty (CIFAR-10-C not evaluated).
    """
    if not isinstance(epochs, int) or epochs < 1:
        raise NaresError(f"epochs={epochs!r} must be a positive integer")
    index = ArchIndex.default()
    chosen = _select(n, seed, archs, index)
    all_archs = [a for _, a in index]
    rng = np.random.default_rng(seed)
    noise = rng.uniform(-VAL_NOISE_BOUND, VAL_NOISE_BOUND, size=N_ARCHS)
    val_pgd = np.round(np.array([planted_val_pgd(a) for a in all_archs]) + noise, _DIGITS)
    log_p = np.log([complexity.params(a, width_base) for a in all_archs])
    z = (log_p - log_p.min()) / (log_p.max() - log_p.min())
    logs, best = _curves(rng, N_ARCHS, epochs, val_pgd)
    test = _test_metrics(rng, val_pgd, z)
    cells = _corruption_cells(rng, test["test_clean_acc"])
    macs_all = np.array([complexity.macs(a, width_base) for a in all_archs], dtype=float)
    day0 = dt.date(2025, 1, 1) + dt.timedelta(days=seed % 365)

    records = []
    for aid in chosen:
        r = aid - 1
        arch = all_archs[r]
        train = {
            "seed": seed,
            "gpu_type": GPU_TYPE,
            "timestamp": (day0 + dt.timedelta(days=r % 300)).isoformat(),
            "training_time": round(0.84 * macs_all[r] / macs_all.mean(), 6),
            "best_epoch": int(best[r]),
            **{k: v[r].tolist() for k, v in logs.items()},
        }
        test_r = {k: float(v[r]) for k, v in test.items()}
        test_r["corruptions"] = (
            {
                c: {str(s): {"acc": float(cells[r, ci, si]), "loss": round(0.2 + 2 * (1 - float(cells[r, ci, si])), _DIGITS)}
                    for si, s in enumerate(SEVERITIES)}
                for ci, c in enumerate(CORRUPTIONS)
            }
            if corruptions
            else {}
        )
        records.append(build_record(arch_id=aid, arch=arch, params=complexity.params(arch, width_base),
                                    macs=complexity.macs(arch, width_base), train=train, test=test_r))
    return records



def synthetic_manifest(arch_ids: Iterable[int]):
    """A `manifest` table (pyarrow) of four checkpoint rows per architecture, with no objects behind them:
    validate it with `verify_checkpoints="none"`."""
    import pyarrow as pa

    from nares.store.tables import SCHEMAS

    rows = [
        {"arch_id": i, "kind": k, "key": f"objects/sha256/{i}/{k}", "sha256": hashlib.sha256(f"{i}/{k}".encode()).hexdigest(),
         "size": 1, "epoch": 0}
        for i in arch_ids
        for k in CHECKPOINT_KINDS
    ]
    return pa.Table.from_pylist(rows, schema=SCHEMAS["manifest"])
