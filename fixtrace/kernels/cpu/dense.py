"""Fully connected backtrack kernels (CPU)."""

from __future__ import annotations

import numpy as np
from numba import njit

from fixtrace.kernels.shared.dense import contribution, dense_argmax_one, positive_total, share


@njit(cache=True, nogil=True)
def dense_positive(af, wf, out_index, counts, n_batch, n_in, n_out, weighted):  # pragma: no cover - numba
    """Every input whose contribution a[j] * w[j, i] is positive, for every selected output i.

    Args:
        af: inputs, flat (B * K); wf: weights, flat (K * M).
        out_index: int64 flat indices b * M + i of the selected outputs.
        counts: float64 count of each selected output.
        n_batch, n_in, n_out: B, K, M.
        weighted: 0: each input gets the output's whole count (the authors' rule); 1: the count
            is shared among the inputs in proportion to their contributions (``share``).

    Returns:
        float64 (B * K,): per input, the summed counts of the outputs that selected it (0: none).
    """
    acc = np.zeros(n_batch * n_in, dtype=np.float64)
    for f in range(out_index.size):
        i = out_index[f] % n_out
        b = out_index[f] // n_out
        total = positive_total(af, wf, b, i, n_in, n_out) if weighted else 1.0
        if total <= 0.0:
            continue
        for j in range(n_in):
            c = contribution(af, wf, b, j, i, n_in, n_out)
            if c > 0.0:
                acc[b * n_in + j] += share(counts[f], c, total) if weighted else counts[f]
    return acc


@njit(cache=True, nogil=True)
def dense_argmax(af, wf, out_index, n_in, n_out):  # pragma: no cover - numba
    """The single input with the largest contribution per selected output (first on ties).

    Used when the input is a flattened feature map (VGG fc6 <- pool5).

    Returns:
        int64 flat indices b * K + j, one per selected output.
    """
    result = np.empty(out_index.size, dtype=np.int64)
    for f in range(out_index.size):
        result[f] = dense_argmax_one(af, wf, out_index[f], n_in, n_out)
    return result
