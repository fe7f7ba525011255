"""Pooling backtrack kernels (CPU)."""

from __future__ import annotations

import numpy as np
from numba import njit

from fixtrace.kernels.shared.pool import global_one, pool_one


@njit(cache=True)
def pool_argmax(xf, out_index, g):  # pragma: no cover - numba
    """Map pool output fixations to the input cell holding the window's max.

    Args:
        xf: input activations, flat.
        out_index: int64 flat indices into the output.
        g: ``pool_geometry``.

    Returns:
        int64 flat indices into the input.
    """
    result = np.empty(out_index.size, dtype=np.int64)
    for f in range(out_index.size):
        result[f] = pool_one(xf, out_index[f], g)
    return result


@njit(cache=True)
def global_argmax(xf, channel_index, g):  # pragma: no cover - numba
    """int64 flat indices into the map ``xf`` of the spatial argmax of each (batch, channel)
    fixation ``channel_index`` (b * C + c) of a global pool; ``g``: see ``shared.pool.global_one``."""
    result = np.empty(channel_index.size, dtype=np.int64)
    for f in range(channel_index.size):
        result[f] = global_one(xf, channel_index[f], g)
    return result
