"""Conv backtrack kernels: one output fixation -> one input fixation (serial and parallel drivers)."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from fixtrace.kernels.cpu.window import centre_distance, keep_best, taps, unravel4

LOCATION_ARGMAX = 0
LOCATION_CENTRE = 1
#: Work (fixations x channels x kernel cells) above which the parallel driver pays off.
PARALLEL_WORK = 200_000


@njit(cache=True, boundscheck=False)
def conv_backtrack(x, w, out_index, out_h, out_w, groups, strides, pads, dilations, location):  # pragma: no cover - numba
    """Map conv output fixations to input fixations.

    For output (b, m, r, q): over the input channels of m's group, sum window x weight over
    the window (zero padding contributes nothing) and keep the channel with the largest sum
    (first on ties). Its location is the receptive-field centre (``LOCATION_CENTRE``, clamped
    into the image) or the window cell with the largest x * w of that channel
    (``LOCATION_ARGMAX``, valid cells only, ties towards the centre).

    Args:
        x: input activations, float32 (B, C, H, W).
        w: weights, float32 (M, C // groups, KH, KW).
        out_index: int64 flat indices into the output (B, M, out_h, out_w).
        out_h, out_w: output spatial size.
        groups: conv groups.
        strides, pads, dilations: int64 arrays (sh, sw), (top, left), (dh, dw).
        location: LOCATION_ARGMAX or LOCATION_CENTRE.

    Returns:
        int64 flat indices into x, one per output fixation.
    """
    result = np.empty(out_index.size, dtype=np.int64)
    sums = np.empty(w.shape[1], dtype=np.float64)
    xf = x.reshape(-1)  # flat views: explicit offsets are much faster than 4-D indexing here
    wf = w.reshape(-1)
    for f in range(out_index.size):
        result[f] = _one(xf, wf, sums, out_index[f], x.shape, w.shape, out_h, out_w, groups, strides, pads, dilations, location)
    return result


@njit(cache=True, boundscheck=False, parallel=True)
def conv_backtrack_parallel(x, w, out_index, out_h, out_w, groups, strides, pads, dilations, location):  # pragma: no cover - numba
    """``conv_backtrack`` with the fixations shared out over threads; same results."""
    result = np.empty(out_index.size, dtype=np.int64)
    xf = x.reshape(-1)
    wf = w.reshape(-1)
    chunks = 16
    step = (out_index.size + chunks - 1) // chunks
    for k in prange(chunks):
        sums = np.empty(w.shape[1], dtype=np.float64)
        for f in range(k * step, min((k + 1) * step, out_index.size)):
            result[f] = _one(xf, wf, sums, out_index[f], x.shape, w.shape, out_h, out_w, groups, strides, pads, dilations, location)
    return result


@njit(cache=True, boundscheck=False, inline="always")
def _one(xf, wf, sums, flat, x_shape, w_shape, out_h, out_w, groups, strides, pads, dilations, location):  # pragma: no cover - numba
    """The input fixation of one output fixation (see ``conv_backtrack``)."""
    n_batch, n_in, height, width = x_shape
    n_out, c_group, kh, kw = w_shape
    plane = height * width
    kernel = kh * kw
    m_group = n_out // groups
    sh, sw = strides[0], strides[1]
    pt, pl = pads[0], pads[1]
    dh, dw = dilations[0], dilations[1]
    b, m, r, q = unravel4(flat, n_out, out_h, out_w)
    c0 = (m // m_group) * c_group
    top = r * sh - pt
    left = q * sw - pl
    # Valid kernel rows/cols, hoisted out of the channel loop (padding contributes zero).
    i_lo, i_hi = taps(top, dh, kh, height)
    j_lo, j_hi = taps(left, dw, kw, width)
    x_base = (b * n_in + c0) * plane
    w_base = m * c_group * kernel
    if i_hi - i_lo == 1 and j_hi - j_lo == 1:
        # One valid cell (every 1x1 conv): the sum is the single product, no buffer needed.
        xo = x_base + (top + i_lo * dh) * width + left + j_lo * dw
        wo = w_base + i_lo * kw + j_lo
        best_c = 0
        best_sum = np.float64(xf[xo]) * np.float64(wf[wo])
        for c in range(1, c_group):
            v = np.float64(xf[xo + c * plane]) * np.float64(wf[wo + c * kernel])
            if v > best_sum:
                best_sum = v
                best_c = c
    else:
        best_c, best_sum = _best_channel(xf, wf, sums, x_base, w_base, plane, kernel, width, top, left,
                                         i_lo, i_hi, j_lo, j_hi, dh, dw, kw, c_group)
    # The receptive-field centre, clamped: the answer for LOCATION_CENTRE, and the
    # fallback of LOCATION_ARGMAX when the whole window lies in the padding.
    y = min(max(top + ((kh - 1) // 2) * dh, 0), height - 1)
    xx = min(max(left + ((kw - 1) // 2) * dw, 0), width - 1)
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
                dist = centre_distance(i, j, kh, kw)
                best_score, best_dist, y, xx = keep_best(score, dist, yy, xj, best_score, best_dist, y, xx)
    return ((b * n_in + c0 + best_c) * height + y) * width + xx

@njit(cache=True, boundscheck=False, inline="always")
def _best_channel(xf, wf, sums, x_base, w_base, plane, kernel, width, top, left,
                  i_lo, i_hi, j_lo, j_hi, dh, dw, kw, c_group):  # pragma: no cover - numba
    """The channel with the largest window x weight sum (first on ties) and that sum.

    Per-channel sums are accumulated cell by cell so the inner loop runs over channels;
    each channel still adds its cells in raster order.
    """
    for c in range(c_group):
        sums[c] = 0.0
    for i in range(i_lo, i_hi):
        row = x_base + (top + i * dh) * width + left
        for j in range(j_lo, j_hi):
            xo = row + j * dw
            wo = w_base + i * kw + j
            for c in range(c_group):
                sums[c] += np.float64(xf[xo + c * plane]) * np.float64(wf[wo + c * kernel])
    best_c = 0
    best_sum = sums[0]
    for c in range(1, c_group):
        if sums[c] > best_sum:
            best_sum = sums[c]
            best_c = c
    return best_c, best_sum



@njit(cache=True, boundscheck=False, fastmath=True, inline="always")
def _value_at(x_nhwc, w_mhwc, bias, flat, out_h, out_w, groups, strides, pads, dilations, low, high):  # pragma: no cover - numba
    """One conv output value, optionally clipped: what onnxruntime would have kept there.

    Channels-last operands make the channel sum contiguous and fastmath lets it vectorise:
    the value matches onnxruntime's to float32 rounding, which its own kernels do not
    promise across machines either.
    """
    n_batch, height, width, n_in = x_nhwc.shape
    n_out, kh, kw, c_group = w_mhwc.shape
    b, m, r, q = unravel4(flat, n_out, out_h, out_w)
    c0 = (m // (n_out // groups)) * c_group
    top = r * strides[0] - pads[0]
    left = q * strides[1] - pads[1]
    i_lo, i_hi = taps(top, dilations[0], kh, height)
    j_lo, j_hi = taps(left, dilations[1], kw, width)
    acc = np.float32(0.0)
    for i in range(i_lo, i_hi):
        y = top + i * dilations[0]
        for j in range(j_lo, j_hi):
            xx = left + j * dilations[1]
            for c in range(c_group):
                acc += x_nhwc[b, y, xx, c0 + c] * w_mhwc[m, i, j, c]
    return min(max(acc + bias[m], low), high)


@njit(cache=True, boundscheck=False)
def depthwise_backtrack_recomputed(src_nhwc, src_w, src_bias, src_groups, src_strides, src_pads, src_dilations, low, high,
                                   w, out_index, in_h, in_w, out_h, out_w, groups, strides, pads, dilations, location):  # pragma: no cover - numba
    """``conv_backtrack`` for a depthwise conv whose input was not kept but is Clip(Conv(src)).

    The channel of a depthwise fixation is fixed by its group; only the location needs input
    values, and only in its own window: they are recomputed from ``src`` cell by cell.

    Args:
        src_nhwc, src_w, src_bias, src_groups, src_strides, src_pads, src_dilations, low, high:
            the producing conv: its input channels last (B, H, W, C), weights channels last
            (M, KH, KW, C // groups), bias, window and clip bounds (-inf, inf for none).
        w: the depthwise weights (M, 1, KH, KW).
        out_index: flat indices into the depthwise output (B, M, out_h, out_w).
        in_h, in_w: the depthwise input's spatial size; other args as in ``conv_backtrack``.

    Returns:
        int64 flat indices into the depthwise input (B, C, in_h, in_w).
    """
    n_out, c_group, kh, kw = w.shape
    n_in = groups * c_group
    m_group = n_out // groups
    result = np.empty(out_index.size, dtype=np.int64)
    for f in range(out_index.size):
        flat = out_index[f]
        b, m, r, q = unravel4(flat, n_out, out_h, out_w)
        c = (m // m_group) * c_group
        top = r * strides[0] - pads[0]
        left = q * strides[1] - pads[1]
        y = min(max(top + ((kh - 1) // 2) * dilations[0], 0), in_h - 1)
        xx = min(max(left + ((kw - 1) // 2) * dilations[1], 0), in_w - 1)
        if location == LOCATION_ARGMAX:
            best_score = -np.inf
            best_dist = 1 << 30
            i_lo, i_hi = taps(top, dilations[0], kh, in_h)
            j_lo, j_hi = taps(left, dilations[1], kw, in_w)
            for i in range(i_lo, i_hi):
                yy = top + i * dilations[0]
                for j in range(j_lo, j_hi):
                    xj = left + j * dilations[1]
                    cell = ((b * n_in + c) * in_h + yy) * in_w + xj
                    value = _value_at(src_nhwc, src_w, src_bias, cell, in_h, in_w, src_groups, src_strides, src_pads,
                                      src_dilations, low, high)
                    score = np.float64(value) * np.float64(w[m, 0, i, j])
                    dist = centre_distance(i, j, kh, kw)
                    best_score, best_dist, y, xx = keep_best(score, dist, yy, xj, best_score, best_dist, y, xx)
        result[f] = ((b * n_in + c) * in_h + y) * in_w + xx
    return result
