"""Conv backtrack kernel: one output fixation -> one input fixation."""

from __future__ import annotations

import numpy as np
from numba import njit

from fixtrace.kernels.cpu.window import better, centre_distance

LOCATION_ARGMAX = 0
LOCATION_CENTRE = 1


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
    n_batch, n_in, height, width = x.shape
    n_out, c_group, kh, kw = w.shape
    xf = x.reshape(-1)  # flat views: explicit offsets are much faster than 4-D indexing here
    wf = w.reshape(-1)
    plane = height * width
    kernel = kh * kw
    m_group = n_out // groups
    sh, sw = strides[0], strides[1]
    pt, pl = pads[0], pads[1]
    dh, dw = dilations[0], dilations[1]
    result = np.empty(out_index.size, dtype=np.int64)
    sums = np.empty(c_group, dtype=np.float64)
    for f in range(out_index.size):
        flat = out_index[f]
        q = flat % out_w
        r = (flat // out_w) % out_h
        m = (flat // (out_w * out_h)) % n_out
        b = flat // (out_w * out_h * n_out)
        c0 = (m // m_group) * c_group
        top = r * sh - pt
        left = q * sw - pl
        # Valid kernel rows/cols, hoisted out of the channel loop (padding contributes zero).
        i_lo = max(0, (-top + dh - 1) // dh)
        i_hi = min(kh, (height - top + dh - 1) // dh)
        j_lo = max(0, (-left + dw - 1) // dw)
        j_hi = min(kw, (width - left + dw - 1) // dw)
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
                    if better(score, dist, best_score, best_dist):
                        best_score = score
                        best_dist = dist
                        y = yy
                        xx = xj
        result[f] = ((b * n_in + c0 + best_c) * height + y) * width + xx
    return result


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
