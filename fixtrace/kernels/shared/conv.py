"""Conv backtrack bodies: one output fixation -> one input fixation.

A conv's geometry travels as one int64 tuple (see ``conv_geometry``) so that CPU and CUDA
kernels take the same few arguments.
"""

from __future__ import annotations

import numpy as np
from numba.extending import register_jitable

from fixtrace.kernels.shared.pack import pairs
from fixtrace.kernels.shared.window import centre_distance, clamp, keep_best, taps, unravel4

LOCATION_ARGMAX = 0
LOCATION_CENTRE = 1


def conv_geometry(
    x_shape: tuple[int, ...], w_shape: tuple[int, ...], out_hw: tuple[int, int], groups: int, strides, pads, dilations
) -> tuple[int, ...]:
    """Pack a conv's sizes for the bodies below.

    Args:
        x_shape: input (B, C, H, W); w_shape: weights (M, C // groups, KH, KW).
        out_hw: output spatial size; groups: conv groups.
        strides, pads, dilations: (sh, sw), (top, left), (dh, dw).

    Returns:
        (C, H, W, M, C // groups, KH, KW, out_h, out_w, M // groups, sh, sw, top, left, dh, dw).
    """
    n_out, c_group, kh, kw = (int(d) for d in w_shape)
    sizes = (*(int(d) for d in x_shape[1:4]), n_out, c_group, kh, kw, *pairs(out_hw))
    return (*sizes, n_out // int(groups), *pairs(strides, pads, dilations))


@register_jitable
def window_origin(flat, g):  # pragma: no cover - numba
    """(batch, output channel, first input channel of its group, window top, window left) of a
    flat index into a conv's output, for ``conv_geometry`` g."""
    n_out, c_group, out_h, out_w, m_group, sh, sw, pt, pl = g[3], g[4], g[7], g[8], g[9], g[10], g[11], g[12], g[13]
    b, m, r, q = unravel4(flat, n_out, out_h, out_w)
    return b, m, (m // m_group) * c_group, r * sh - pt, q * sw - pl


@register_jitable
def conv_one(xf, wf, flat, g, location):  # pragma: no cover - numba
    """The input fixation of one conv output fixation.

    For output (b, m, r, q): over the input channels of m's group, sum window x weight over
    the window (padding contributes nothing) and keep the channel with the largest sum (first
    on ties). Its location is the receptive-field centre (``LOCATION_CENTRE``, clamped into
    the image) or the window cell with the largest x * w of that channel (``LOCATION_ARGMAX``,
    valid cells only, ties towards the centre).

    Args:
        xf: the input activations, flat float32 (B * C * H * W).
        wf: the weights, flat float32 (M * C // groups * KH * KW).
        flat: the output fixation's flat index into (B, M, out_h, out_w).
        g: ``conv_geometry``.
        location: LOCATION_ARGMAX or LOCATION_CENTRE.

    Returns:
        The flat index into the input.
    """
    n_in, height, width, n_out, c_group, kh, kw, out_h, out_w, m_group, sh, sw, pt, pl, dh, dw = g
    b, m, c0, top, left = window_origin(flat, g)
    i_lo, i_hi = taps(top, dh, kh, height)
    j_lo, j_hi = taps(left, dw, kw, width)
    plane = height * width
    kernel = kh * kw
    x_base = (b * n_in + c0) * plane
    w_base = m * c_group * kernel
    best_c = 0
    best_sum = -np.inf
    if i_hi - i_lo == 1 and j_hi - j_lo == 1:
        # One valid cell (every 1x1 conv): each channel's sum is its single product.
        xo = x_base + (top + i_lo * dh) * width + left + j_lo * dw
        wo = w_base + i_lo * kw + j_lo
        for c in range(c_group):
            total = np.float64(xf[xo + c * plane]) * np.float64(wf[wo + c * kernel])
            if c == 0 or total > best_sum:
                best_sum = total
                best_c = c
    else:
        for c in range(c_group):
            # Each channel adds its valid cells in raster order from 0.0: the same sum on every target.
            total = np.float64(0.0)
            for i in range(i_lo, i_hi):
                xo = x_base + c * plane + (top + i * dh) * width + left
                wo = w_base + c * kernel + i * kw
                for j in range(j_lo, j_hi):
                    total += np.float64(xf[xo + j * dw]) * np.float64(wf[wo + j])
            if c == 0 or total > best_sum:
                best_sum = total
                best_c = c
    # The receptive-field centre, clamped: the answer for LOCATION_CENTRE, and the
    # fallback of LOCATION_ARGMAX when the whole window lies in the padding.
    y = clamp(top + ((kh - 1) // 2) * dh, 0, height - 1)
    xx = clamp(left + ((kw - 1) // 2) * dw, 0, width - 1)
    if location == LOCATION_ARGMAX:
        best_score = -np.inf
        best_dist = 1 << 30
        xc = x_base + best_c * plane
        wc = w_base + best_c * kernel
        for i in range(i_lo, i_hi):
            yy = top + i * dh
            for j in range(j_lo, j_hi):
                xj = left + j * dw
                score = np.float64(xf[xc + yy * width + xj]) * np.float64(wf[wc + i * kw + j])
                best_score, best_dist, y, xx = keep_best(
                    score, centre_distance(i, j, kh, kw), yy, xj, best_score, best_dist, y, xx
                )
    return ((b * n_in + c0 + best_c) * height + y) * width + xx


@register_jitable
def conv_value(src, src_w, src_bias, cell, sg, low, high):  # pragma: no cover - numba
    """One value of Clip(Conv(src)) as onnxruntime would have kept it (float32, then clipped).

    Args:
        src: the conv's input, flat float32 (B * C * H * W).
        src_w: its weights channels last, flat float32 (M * KH * KW * C // groups).
        src_bias: float32 (M,).
        cell: flat index into the conv's output (B, M, out_h, out_w).
        sg: the conv's ``conv_geometry``.
        low, high: clip bounds (-inf, inf for none).

    Returns:
        The value, float64 (exactly a float32).
    """
    n_in, height, width, n_out, c_group, kh, kw, out_h, out_w, m_group, sh, sw, pt, pl, dh, dw = sg
    b, m, c0, top, left = window_origin(cell, sg)
    i_lo, i_hi = taps(top, dh, kh, height)
    j_lo, j_hi = taps(left, dw, kw, width)
    plane = height * width
    total = np.float64(0.0)
    for i in range(i_lo, i_hi):
        for j in range(j_lo, j_hi):
            # Read in place (channel stride ``plane``): a few windows do not pay for a channels-last copy.
            xo = (b * n_in + c0) * plane + (top + i * dh) * width + left + j * dw
            wo = ((m * kh + i) * kw + j) * c_group
            for c in range(c_group):
                total += np.float64(src[xo + c * plane]) * np.float64(src_w[wo + c])
    value = np.float64(np.float32(total + np.float64(src_bias[m])))
    if value < low:
        value = low
    if value > high:
        value = high
    return value


@register_jitable
def depthwise_recomputed_one(src, src_w, src_bias, sg, low, high, wf, flat, g, location):  # pragma: no cover - numba
    """``conv_one`` for a depthwise conv whose input was not kept but is Clip(Conv(src)).

    The channel of a depthwise fixation is fixed by its group; only the location needs input
    values, and only in its own window: they are recomputed with ``conv_value``.

    Args:
        src, src_w, src_bias, sg, low, high: the producing conv, as in ``conv_value``.
        wf: the depthwise weights, flat float32 (M * 1 * KH * KW).
        flat, g, location: as in ``conv_one``.

    Returns:
        The flat index into the depthwise input.
    """
    n_in, height, width, n_out, c_group, kh, kw, out_h, out_w, m_group, sh, sw, pt, pl, dh, dw = g
    b, m, c, top, left = window_origin(flat, g)
    y = clamp(top + ((kh - 1) // 2) * dh, 0, height - 1)
    xx = clamp(left + ((kw - 1) // 2) * dw, 0, width - 1)
    if location == LOCATION_ARGMAX:
        best_score = -np.inf
        best_dist = 1 << 30
        i_lo, i_hi = taps(top, dh, kh, height)
        j_lo, j_hi = taps(left, dw, kw, width)
        for i in range(i_lo, i_hi):
            yy = top + i * dh
            for j in range(j_lo, j_hi):
                xj = left + j * dw
                value = conv_value(src, src_w, src_bias, ((b * n_in + c) * height + yy) * width + xj, sg, low, high)
                score = value * np.float64(wf[(m * kh + i) * kw + j])
                best_score, best_dist, y, xx = keep_best(
                    score, centre_distance(i, j, kh, kw), yy, xj, best_score, best_dist, y, xx
                )
    return ((b * n_in + c) * height + y) * width + xx
