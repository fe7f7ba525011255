"""Resampling kernels for rendering."""

from __future__ import annotations

from numba import njit


@njit(cache=True, boundscheck=False, nogil=True)
def blend_rows(across, first, second, w_first, w_second, row0, out):  # pragma: no cover - numba
    """out[i] = across[first[i] - row0] * w_first[i] + across[second[i] - row0] * w_second[i],
    in float32 as numpy computes it (one pass, no row-gathered temporaries).

    Args:
        across: float32 (h, W) grid rows already resampled along the columns.
        first, second: intp (H,) the two grid rows of each output row.
        w_first, w_second: float32 (H,) their weights.
        row0: the grid row held in ``across[0]``.
        out: float32 (H, W) to fill.
    """
    width = out.shape[1]
    for i in range(out.shape[0]):
        a = across[first[i] - row0]
        b = across[second[i] - row0]
        wa = w_first[i]
        wb = w_second[i]
        o = out[i]
        for j in range(width):
            o[j] = a[j] * wa + b[j] * wb
