"""Fully connected bodies."""

from __future__ import annotations

import math

import numpy as np
from numba.extending import register_jitable


@register_jitable
def contribution(af, wf, b, j, i, n_in, n_out):  # pragma: no cover - numba
    """a[b, j] * w[j, i] in float64 (exact for float32 operands).

    Args:
        af: inputs, flat (B * K); wf: weights, flat (K * M), so that the layer computes a @ w.
        b, j, i: batch, input and output index; n_in, n_out: K and M.
    """
    return np.float64(af[b * n_in + j]) * np.float64(wf[j * n_out + i])


#: Shares of a count are rounded to multiples of 1 / SHARE_SCALE, so that sums of them are exact
#: in any order (counts below 2**33): the CPU and CUDA backends then give identical sets.
SHARE_SCALE = 1048576.0  # 2**20


@register_jitable
def share(count, part, total):  # pragma: no cover - numba
    """``count * part / total`` rounded (half up) to a multiple of 1 / SHARE_SCALE."""
    return math.floor(count * (part / total) * SHARE_SCALE + 0.5) / SHARE_SCALE  # np.rint has no CUDA form


@register_jitable
def positive_total(af, wf, b, i, n_in, n_out):  # pragma: no cover - numba
    """The sum of the positive contributions a[b, j] * w[j, i] over the inputs j, in j order."""
    total = 0.0
    for j in range(n_in):
        c = contribution(af, wf, b, j, i, n_in, n_out)
        if c > 0.0:
            total += c
    return total


@register_jitable
def dense_argmax_one(af, wf, flat, n_in, n_out):  # pragma: no cover - numba
    """The input with the largest contribution to one selected output (first on ties).

    Args:
        af, wf, n_in, n_out: as in ``contribution``.
        flat: the output fixation b * M + i.

    Returns:
        The flat input index b * K + j.
    """
    i = flat % n_out
    b = flat // n_out
    best = -np.inf
    best_j = 0
    for j in range(n_in):
        c = contribution(af, wf, b, j, i, n_in, n_out)
        if c > best:
            best = c
            best_j = j
    return b * n_in + best_j
