"""Pooling backtrack kernels: window argmax (max and average pools) and global argmax."""

from __future__ import annotations

import numpy as np
from numba import njit

from fixtrace.kernels.cpu.window import centre_distance, keep_best, taps, unravel4


@njit(cache=True)
def pool_argmax(x, out_index, out_h, out_w, kernel, strides, pads, dilations):  # pragma: no cover - numba
    """Map pool output fixations to the input cell holding the window's max.

    Args:
        x: input activations (B, C, H, W).
        out_index: int64 flat indices into the output (B, C, out_h, out_w).
        out_h, out_w: output spatial size.
        kernel, strides, pads, dilations: int64 arrays (kh, kw), (sh, sw), (top, left), (dh, dw).

    Returns:
        int64 flat indices into x; ties go towards the window centre (see window.py).
    """
    n_batch, n_chan, height, width = x.shape
    kh, kw = kernel[0], kernel[1]
    result = np.empty(out_index.size, dtype=np.int64)
    for f in range(out_index.size):
        flat = out_index[f]
        b, c, r, q = unravel4(flat, n_chan, out_h, out_w)
        top = r * strides[0] - pads[0]
        left = q * strides[1] - pads[1]
        best_score = -np.inf
        best_dist = 1 << 30
        y = min(max(top, 0), height - 1)
        xx = min(max(left, 0), width - 1)
        i_lo, i_hi = taps(top, dilations[0], kh, height)
        j_lo, j_hi = taps(left, dilations[1], kw, width)
        for i in range(i_lo, i_hi):
            yy = top + i * dilations[0]
            for j in range(j_lo, j_hi):
                xj = left + j * dilations[1]
                score = np.float64(x[b, c, yy, xj])
                dist = centre_distance(i, j, kh, kw)
                best_score, best_dist, y, xx = keep_best(score, dist, yy, xj, best_score, best_dist, y, xx)
        result[f] = ((b * n_chan + c) * height + y) * width + xx
    return result


@njit(cache=True)
def global_argmax(x, channel_index):  # pragma: no cover - numba
    """Map (batch, channel) fixations to the spatial argmax of that channel.

    Args:
        x: input activations (B, C, H, W).
        channel_index: int64 flat indices b * C + c.

    Returns:
        int64 flat indices into x; ties go towards the map centre.
    """
    n_batch, n_chan, height, width = x.shape
    result = np.empty(channel_index.size, dtype=np.int64)
    for f in range(channel_index.size):
        bc = channel_index[f]
        c = bc % n_chan
        b = bc // n_chan
        best_score = -np.inf
        best_dist = 1 << 30
        y = 0
        xx = 0
        for i in range(height):
            for j in range(width):
                score = np.float64(x[b, c, i, j])
                dist = centre_distance(i, j, height, width)
                best_score, best_dist, y, xx = keep_best(score, dist, i, j, best_score, best_dist, y, xx)
        result[f] = (bc * height + y) * width + xx
    return result
