"""Conv backtrack kernels (CPU): loops over fixations around the shared bodies."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from fixtrace.kernels.shared.conv import conv_one, depthwise_recomputed_one

#: Work (fixations x channels x kernel cells) above which the parallel driver pays off.
PARALLEL_WORK = 200_000
_CHUNKS = 16


@njit(cache=True, boundscheck=False)
def _fill(xf, wf, out_index, g, location, result, lo, hi):  # pragma: no cover - numba
    """result[lo:hi] for out_index[lo:hi]."""
    for f in range(lo, hi):
        result[f] = conv_one(xf, wf, out_index[f], g, location)


@njit(cache=True, boundscheck=False)
def conv_backtrack(xf, wf, out_index, g, location):  # pragma: no cover - numba
    """Map conv output fixations to input fixations (see ``shared.conv.conv_one``).

    Args:
        xf: input activations, flat float32.
        wf: weights, flat float32.
        out_index: int64 flat indices into the output.
        g: ``conv_geometry``.
        location: LOCATION_ARGMAX or LOCATION_CENTRE.

    Returns:
        int64 flat indices into the input, one per output fixation.
    """
    result = np.empty(out_index.size, dtype=np.int64)
    _fill(xf, wf, out_index, g, location, result, 0, out_index.size)
    return result


@njit(cache=True, boundscheck=False, parallel=True)
def conv_backtrack_parallel(xf, wf, out_index, g, location):  # pragma: no cover - numba
    """``conv_backtrack`` with the fixations shared out over threads; same results."""
    result = np.empty(out_index.size, dtype=np.int64)
    step = (out_index.size + _CHUNKS - 1) // _CHUNKS
    for k in prange(_CHUNKS):
        # A plain call per chunk: the body called straight from the parallel loop compiled 3x slower.
        _fill(xf, wf, out_index, g, location, result, k * step, min((k + 1) * step, out_index.size))
    return result


@njit(cache=True, boundscheck=False)
def depthwise_backtrack_recomputed(src, src_w, src_bias, sg, low, high, wf, out_index, g, location):  # pragma: no cover - numba
    """``conv_backtrack`` for a depthwise conv whose input is recomputed from the producing conv.

    Args:
        src, src_w, src_bias, sg, low, high: the producing conv (see ``shared.conv.conv_value``).
        wf, out_index, g, location: the depthwise conv, as in ``conv_backtrack``.

    Returns:
        int64 flat indices into the depthwise input.
    """
    result = np.empty(out_index.size, dtype=np.int64)
    for f in range(out_index.size):
        result[f] = depthwise_recomputed_one(src, src_w, src_bias, sg, low, high, wf, out_index[f], g, location)
    return result
