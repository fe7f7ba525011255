"""Fully connected backtrack kernels."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def dense_positive(a, w, out_index, counts):  # pragma: no cover - numba
    """Every input whose contribution a[j] * w[j, i] is positive, for every selected output i.

    Args:
        a: inputs (B, K).
        w: weights (K, M), so that the layer computes a @ w (+ bias).
        out_index: int64 flat indices b * M + i of the selected outputs.
        counts: float64 count of each selected output.

    Returns:
        (index, count): flat indices b * K + j of the inputs and the summed counts of the
        outputs that selected each one, sorted by index.
    """
    n_batch, n_in = a.shape
    n_out = w.shape[1]
    acc = np.zeros(n_batch * n_in, dtype=np.float64)
    for f in range(out_index.size):
        i = out_index[f] % n_out
        b = out_index[f] // n_out
        for j in range(n_in):
            if np.float64(a[b, j]) * np.float64(w[j, i]) > 0.0:
                acc[b * n_in + j] += counts[f]
    index = np.nonzero(acc)[0].astype(np.int64)
    return index, acc[index]


@njit(cache=True)
def dense_argmax(a, w, out_index):  # pragma: no cover - numba
    """The single input with the largest contribution a[j] * w[j, i] per selected output i.

    Used when the input is a flattened feature map (VGG fc6 <- pool5). Ties: the first j.

    Args:
        a: inputs (B, K).
        w: weights (K, M).
        out_index: int64 flat indices b * M + i.

    Returns:
        int64 flat indices b * K + j, one per selected output.
    """
    n_batch, n_in = a.shape
    n_out = w.shape[1]
    result = np.empty(out_index.size, dtype=np.int64)
    for f in range(out_index.size):
        i = out_index[f] % n_out
        b = out_index[f] // n_out
        best = -np.inf
        best_j = 0
        for j in range(n_in):
            c = np.float64(a[b, j]) * np.float64(w[j, i])
            if c > best:
                best = c
                best_j = j
        result[f] = b * n_in + best_j
    return result
