"""Fixation-set bookkeeping: merge duplicates, summing their counts."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def merge_duplicates(index, counts):  # pragma: no cover - numba
    """Sort flat indices, keep each once and sum the counts of the copies.

    Args:
        index: int64 flat indices, any order, duplicates allowed.
        counts: float64 count per index.

    Returns:
        (unique sorted indices, summed counts).
    """
    order = np.argsort(index, kind="mergesort")
    out_index = np.empty(index.size, dtype=np.int64)
    out_count = np.empty(index.size, dtype=np.float64)
    n = 0
    for k in range(order.size):
        idx = index[order[k]]
        if n > 0 and out_index[n - 1] == idx:
            out_count[n - 1] += counts[order[k]]
        else:
            out_index[n] = idx
            out_count[n] = counts[order[k]]
            n += 1
    return out_index[:n], out_count[:n]
