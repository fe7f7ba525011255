"""Gradient kernels (CPU) for the rules where numpy's temporaries dominate.

Serial on purpose: with ``parallel=True`` numba's thread pool stayed busy and slowed the
BLAS products of the neighbouring rules threefold (MobileNetV2 backward 190 ms instead of 60).
"""

from __future__ import annotations

import numpy as np
from numba import njit, uint64

MODE_PLAIN = 0
MODE_GUIDED = 1
MODE_DECONVNET = 2


@njit(cache=True, boundscheck=False, nogil=True)
def masked_gradient(grad, x, low, high, mode):  # pragma: no cover - numba
    """ReLU/Clip backward in one pass: grad where low < x < high (plain), also only where
    grad > 0 (guided), or grad > 0 anywhere (deconvnet).

    Args:
        grad, x: float32 arrays of the same size (flat views are fine).
        low, high: the clip bounds.
        mode: MODE_PLAIN, MODE_GUIDED or MODE_DECONVNET.

    Returns:
        float32 gradient, flat.
    """
    g = grad.reshape(-1)
    v = x.reshape(-1)
    out = np.empty(g.size, dtype=np.float32)
    for i in range(g.size):
        k = uint64(i)
        d = g[k]
        if mode == MODE_DECONVNET:
            out[k] = d if d > 0 else np.float32(0.0)
        elif v[k] > low and v[k] < high and (mode == MODE_PLAIN or d > 0):
            out[k] = d
        else:
            out[k] = np.float32(0.0)
    return out


@njit(cache=True, boundscheck=False, nogil=True)
def depthwise_input_gradient(grad, w, height, width, strides, pads, dilations):  # pragma: no cover - numba
    """d(loss)/d(x) of a depthwise conv with one output channel per input channel.

    Tap by tap, each output row adds grad x weight into the input row it read; the inner loop
    runs over contiguous columns (serial: numba's thread pool slowed the BLAS calls around it).

    Args:
        grad: float32 (B, C, OH, OW), the output gradient.
        w: float32 (C, 1, KH, KW).
        height, width: the input's spatial size.
        strides, pads, dilations: int64 (sh, sw), (top, left), (dh, dw).

    Returns:
        float32 (B, C, H, W).
    """
    n_batch, n_chan, out_h, out_w = grad.shape
    kh, kw = w.shape[2], w.shape[3]
    sh, sw = strides[0], strides[1]
    pt, pl = pads[0], pads[1]
    dh, dw = dilations[0], dilations[1]
    dx = np.zeros((n_batch, n_chan, height, width), dtype=np.float32)
    for b in range(n_batch):
        for c in range(n_chan):
            for i in range(kh):
                for j in range(kw):
                    weight = w[c, 0, i, j]
                    offset = j * dw - pl
                    # Output columns q whose input column q * sw + offset lies inside 0..width-1.
                    q_lo = max(0, (-offset + sw - 1) // sw)
                    q_hi = min(out_w, (width - 1 - offset) // sw + 1)
                    for r in range(out_h):
                        y = r * sh - pt + i * dh
                        if y < 0 or y >= height:
                            continue
                        row = dx[b, c, y]
                        src = grad[b, c, r]
                        # Unsigned indices (all >= 0 by q_lo) spare numba's negative-index
                        # wrap-around, which is what kept LLVM from vectorising: 3x faster.
                        if sw == 1:
                            for q in range(q_lo, q_hi):
                                row[uint64(q + offset)] += src[uint64(q)] * weight
                        else:
                            for q in range(q_lo, q_hi):
                                row[uint64(q * sw + offset)] += src[uint64(q)] * weight
    return dx
