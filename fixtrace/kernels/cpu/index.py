"""Index maps and routing (CPU)."""

from __future__ import annotations

import numpy as np
from numba import njit

from fixtrace.kernels.shared.index import remap_one, route_one


@njit(cache=True, nogil=True)
def remap(out_index, table):  # pragma: no cover - numba
    """Flat input indices of output fixations through a ``remap_table`` (-1: dropped)."""
    result = np.empty(out_index.size, dtype=np.int64)
    for f in range(out_index.size):
        result[f] = remap_one(out_index[f], table)
    return result


@njit(cache=True, nogil=True)
def route(out_index, inner, along, offset, size):  # pragma: no cover - numba
    """Indices of Concat output fixations in one input (-1: held by another input)."""
    result = np.empty(out_index.size, dtype=np.int64)
    for f in range(out_index.size):
        result[f] = route_one(out_index[f], inner, along, offset, size)
    return result
