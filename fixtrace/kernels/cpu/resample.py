"""Resampling kernels for rendering."""

from __future__ import annotations

import numpy as np
from numba import njit
from numba.extending import register_jitable


@register_jitable
def _row_pair(across, first, second, w_first, w_second, row0, i):  # pragma: no cover - numba
    """Output row ``i``'s two grid rows (held from ``row0`` in ``across``) and their weights."""
    return across[first[i] - row0], across[second[i] - row0], w_first[i], w_second[i]


@njit(cache=True, boundscheck=False, nogil=True)
def blend_rows(across, first, second, w_first, w_second, row0, out, top):  # pragma: no cover - numba
    """out[i] = across[first[i] - row0] * w_first[i] + across[second[i] - row0] * w_second[i],
    in float32 as numpy computes it (one pass, no row-gathered temporaries); with ``top > 0``,
    negatives set to 0 and the rest divided by ``top`` in the same pass.

    Args:
        across: float32 (h, W) grid rows already resampled along the columns.
        first, second: intp (H,) the two grid rows of each output row.
        w_first, w_second: float32 (H,) their weights.
        row0: the grid row held in ``across[0]``.
        out: float32 (H, W) to fill.
        top: float32 divisor (0: the blend as it is).
    """
    width = out.shape[1]
    zero = np.float32(0.0)
    for i in range(out.shape[0]):
        a, b, wa, wb = _row_pair(across, first, second, w_first, w_second, row0, i)
        o = out[i]
        if top > 0:
            for j in range(width):
                v = a[j] * wa + b[j] * wb
                o[j] = (zero if v <= zero else v) / top  # np.maximum(v, 0): -0.0 becomes 0, NaN stays
        else:
            for j in range(width):
                o[j] = a[j] * wa + b[j] * wb


@njit(cache=True, boundscheck=False, nogil=True)
def blend_rows_max(across, first, second, w_first, w_second, row0):  # pragma: no cover - numba
    """The largest value ``blend_rows`` would write (0 when all are below; NaNs are passed over:
    check ``across`` first), computed without writing any: a photo-size map is then written
    once, already scaled.

    Args:
        as ``blend_rows``'s, without ``out`` and ``top``.

    Returns:
        float32.
    """
    width = across.shape[1]
    top = np.float32(0.0)
    for i in range(first.shape[0]):
        a, b, wa, wb = _row_pair(across, first, second, w_first, w_second, row0, i)
        for j in range(width):
            v = a[j] * wa + b[j] * wb
            if v > top:
                top = v
    return top


@njit(cache=True, boundscheck=False, nogil=True)
def blend_columns(grid, first, second, w_second, valid):  # pragma: no cover - numba
    """Every row of ``grid`` resampled along the columns: (grid[:, first] * (1 - w) + grid[:,
    second] * w) * valid, in float32 as numpy computes it.

    Args:
        grid: float32 (h, w).
        first, second: intp (W,) the two grid columns of each output column.
        w_second: float32 (W,) the second's weight.
        valid: float32 (W,) 1 inside the grid, 0 outside.

    Returns:
        float32 (h, W).
    """
    out = np.empty((grid.shape[0], first.shape[0]), dtype=np.float32)
    one = np.float32(1.0)
    for r in range(grid.shape[0]):
        g = grid[r]
        o = out[r]
        for j in range(first.shape[0]):
            w = w_second[j]
            o[j] = (g[first[j]] * (one - w) + g[second[j]] * w) * valid[j]
    return out
