"""Pooling bodies: a window's argmax (max and average pools) and a channel's spatial argmax."""

from __future__ import annotations

import numpy as np
from numba.extending import register_jitable

from fixtrace.kernels.shared.pack import pairs
from fixtrace.kernels.shared.window import centre_distance, clamp, keep_best, taps, unravel4


def pool_geometry(x_shape: tuple[int, ...], out_hw: tuple[int, int], kernel, strides, pads, dilations) -> tuple[int, ...]:
    """Pack a pool's sizes: (C, H, W, out_h, out_w, kh, kw, sh, sw, top, left, dh, dw)."""
    return (*(int(d) for d in x_shape[1:4]), *pairs(out_hw, kernel, strides, pads, dilations))


@register_jitable
def pool_one(xf, flat, g):  # pragma: no cover - numba
    """The input cell holding the max of one pool output fixation's window.

    Args:
        xf: the input, flat (B * C * H * W).
        flat: flat index into the output (B, C, out_h, out_w).
        g: ``pool_geometry``.

    Returns:
        The flat index into the input; ties go towards the window centre (see window.py).
    """
    n_chan, height, width, out_h, out_w, kh, kw, sh, sw, pt, pl, dh, dw = g
    b, c, r, q = unravel4(flat, n_chan, out_h, out_w)
    top = r * sh - pt
    left = q * sw - pl
    base = (b * n_chan + c) * height * width
    best_score = -np.inf
    best_dist = 1 << 30
    y = clamp(top, 0, height - 1)
    xx = clamp(left, 0, width - 1)
    i_lo, i_hi = taps(top, dh, kh, height)
    j_lo, j_hi = taps(left, dw, kw, width)
    for i in range(i_lo, i_hi):
        yy = top + i * dh
        for j in range(j_lo, j_hi):
            xj = left + j * dw
            best_score, best_dist, y, xx = keep_best(
                np.float64(xf[base + yy * width + xj]), centre_distance(i, j, kh, kw), yy, xj, best_score, best_dist, y, xx
            )
    return base + y * width + xx


@register_jitable
def global_one(xf, channel, g):  # pragma: no cover - numba
    """The spatial argmax of one (batch, channel) of a map, in any axis order.

    Args:
        xf: the map, flat.
        channel: b * C + c.
        g: (C, H, W, batch stride, channel stride, row stride, col stride) of the map, the
            rows and cols being the two reduced axes in axis order.

    Returns:
        The flat index of the argmax; ties go towards the map centre.
    """
    n_chan, height, width, sb, sc, sy, sx = g
    base = (channel // n_chan) * sb + (channel % n_chan) * sc
    best_score = -np.inf
    best_dist = 1 << 30
    y = 0
    xx = 0
    for i in range(height):
        for j in range(width):
            best_score, best_dist, y, xx = keep_best(
                np.float64(xf[base + i * sy + j * sx]), centre_distance(i, j, height, width), i, j, best_score, best_dist, y, xx
            )
    return base + y * sy + xx * sx


@register_jitable
def global_positive_total(xf, channel, g):  # pragma: no cover - numba
    """The sum of the positive values of one (batch, channel) of a map, in row-major order
    (``g`` as in ``global_one``)."""
    n_chan, height, width, sb, sc, sy, sx = g
    base = (channel // n_chan) * sb + (channel % n_chan) * sc
    total = 0.0
    for i in range(height):
        for j in range(width):
            v = np.float64(xf[base + i * sy + j * sx])
            if v > 0.0:
                total += v
    return total
