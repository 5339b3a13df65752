"""Integer codes of architectures for fast search: code = position in `all_archs()` (lexicographic).

A code's base-5 digits are the indices of (D1, W1, D2, W2, D3, W3) in DEPTHS/WIDTHS.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from nares.space import DEPTHS, N_ARCHS, WIDTHS, Arch, choice_indices

N_COORDS = 6
N_CHOICES = 5
_POWERS = N_CHOICES ** np.arange(N_COORDS - 1, -1, -1)


def digits(codes: np.ndarray | int) -> np.ndarray:
    """(n, 6) choice indices of each code."""
    c = np.atleast_1d(np.asarray(codes, dtype=np.int64))
    return (c[:, None] // _POWERS[None, :]) % N_CHOICES


def code_of(arch: Arch) -> int:
    return int(np.dot(choice_indices(arch), _POWERS))


def arch_of(code: int) -> Arch:
    d = digits(code)[0]
    return Arch(*((DEPTHS if k % 2 == 0 else WIDTHS)[i] for k, i in enumerate(d)))


@cache
def neighbour_table() -> np.ndarray:
    """(15,625, 24) codes of the one-coordinate neighbours of every code (PROTOCOL §1)."""
    codes = np.arange(N_ARCHS)
    d = digits(codes)
    out = []
    for k in range(N_COORDS):
        for step in range(1, N_CHOICES):
            nd = d.copy()
            nd[:, k] = (nd[:, k] + step) % N_CHOICES
            out.append(nd @ _POWERS)
    return np.stack(out, axis=1)


@cache
def one_hot_table() -> np.ndarray:
    """(15,625, 30) float32 one-hot encodings (6 coordinates × 5 values), as `nares.space.one_hot`."""
    d = digits(np.arange(N_ARCHS))
    out = np.zeros((N_ARCHS, N_COORDS * N_CHOICES), dtype=np.float32)
    out[np.arange(N_ARCHS)[:, None], np.arange(N_COORDS)[None, :] * N_CHOICES + d] = 1
    return out
