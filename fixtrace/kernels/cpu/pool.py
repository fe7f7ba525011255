"""Pooling backtrack kernels (CPU)."""

from __future__ import annotations

import numpy as np
from numba import njit

from fixtrace.kernels.shared.dense import share
from fixtrace.kernels.shared.pool import global_one, global_positive_total, pool_one


@njit(cache=True, nogil=True)
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


@njit(cache=True, nogil=True)
def global_argmax(xf, channel_index, g):  # pragma: no cover - numba
    """int64 flat indices into the map ``xf`` of the spatial argmax of each (batch, channel)
    fixation ``channel_index`` (b * C + c) of a global pool; ``g``: see ``shared.pool.global_one``."""
    result = np.empty(channel_index.size, dtype=np.int64)
    for f in range(channel_index.size):
        result[f] = global_one(xf, channel_index[f], g)
    return result


@njit(cache=True, nogil=True)
def global_spread(xf, channel_index, counts, g):  # pragma: no cover - numba
    """Each (batch, channel) fixation of a global average pool shared among the cells of its
    channel in proportion to their positive values (a channel with none: its whole count to the
    spatial argmax, as ``global_argmax``).

    Args:
        xf: the map, flat; channel_index: b * C + c per fixation; counts: float64 per fixation.
        g: as in ``shared.pool.global_one``.

    Returns:
        float64 (xf.size,): per cell of the map, the summed shares (0: none).
    """
    n_chan, height, width, sb, sc, sy, sx = g
    acc = np.zeros(xf.size, dtype=np.float64)
    for f in range(channel_index.size):
        channel = channel_index[f]
        total = global_positive_total(xf, channel, g)
        if total <= 0.0:
            acc[global_one(xf, channel, g)] += counts[f]
            continue
        base = (channel // n_chan) * sb + (channel % n_chan) * sc
        for i in range(height):
            for j in range(width):
                at = base + i * sy + j * sx
                v = np.float64(xf[at])
                if v > 0.0:
                    acc[at] += share(counts[f], v, total)
    return acc
