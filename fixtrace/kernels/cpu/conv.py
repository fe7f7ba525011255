"""Conv backtrack kernels (CPU): loops over fixations around the shared bodies."""

from __future__ import annotations

import numpy as np
from numba import njit, prange
from numba.core import types
from numba.extending import intrinsic, register_jitable

from fixtrace.kernels.shared.conv import conv_one, depthwise_recomputed_one, window_origin

#: Work (fixations x channels x kernel cells) above which the parallel driver pays off.
PARALLEL_WORK = 200_000
_CHUNKS = 16


@njit(cache=True, boundscheck=False, nogil=True)
def _fill(xf, wf, out_index, g, location, result, lo, hi):  # pragma: no cover - numba
    """result[lo:hi] for out_index[lo:hi]."""
    for f in range(lo, hi):
        result[f] = conv_one(xf, wf, out_index[f], g, location)


@njit(cache=True, boundscheck=False, nogil=True)
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


@njit(cache=True, boundscheck=False, parallel=True, nogil=True)
def conv_backtrack_parallel(xf, wf, out_index, g, location):  # pragma: no cover - numba
    """``conv_backtrack`` with the fixations shared out over threads; same results."""
    result = np.empty(out_index.size, dtype=np.int64)
    step = (out_index.size + _CHUNKS - 1) // _CHUNKS
    for k in prange(_CHUNKS):
        # A plain call per chunk: the body called straight from the parallel loop compiled 3x slower.
        _fill(xf, wf, out_index, g, location, result, k * step, min((k + 1) * step, out_index.size))
    return result


@njit(cache=True, boundscheck=False, nogil=True)
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


#: The order key (``_unique_argmax32``) of float32 +inf: a larger key is +inf or a NaN.
_INF_KEY = 0x7F800000


@intrinsic
def _float_bits(typingctx, value):  # pragma: no cover - numba
    """The bits of a float32 as an int32 (a bit cast: numba has no scalar ``view``)."""
    if value != types.float32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.int32))

    return types.int32(types.float32), codegen


@register_jitable
def _unique_argmax32(xr, wr, keys):  # pragma: no cover - numba
    """The index of the largest float32 product ``xr[c] * wr[c]`` when exactly one entry holds it,
    else -1 (a tie, a NaN first product or an infinite or NaN maximum). ``keys`` is scratch.

    Rounding to float32 is monotonic: a product whose float32 value is below the maximum has a
    smaller exact value too, so a maximum held by one entry is the exact argmax.

    The search runs on integer order keys of the products' bits: LLVM vectorises an int32 max
    and a count of hits, not a float compare-and-select chain (which numba's LLVM leaves scalar).
    """
    n = xr.size
    first = xr[0] * wr[0]
    if first != first:
        return -1
    # Every step cast back to int32: numba widens int32 arithmetic to int64 (half the lanes).
    top = np.int32(-2147483648)
    magnitude = np.int32(0x7FFFFFFF)
    for c in range(n):
        bits = _float_bits(xr[c] * wr[c])
        sign = np.int32(bits >> np.int32(31))
        # Negative floats order backwards as integers: flip their magnitude bits, and add 1 so
        # that -0.0 and +0.0 share the key 0 (they are equal, hence a tie, as floats).
        key = np.int32(np.int32(bits ^ np.int32(sign & magnitude)) - sign)
        keys[c] = key
        top = key if key > top else top
    if top >= np.int32(_INF_KEY):
        return -1
    hits = np.int32(0)
    where = np.int32(0)
    for c in range(n):
        hit = np.int32(keys[c] == top)
        hits = np.int32(hits + hit)
        where = np.int32(where + np.int32(hit * np.int32(c)))
    return where if hits == 1 else -1


@register_jitable
def _argmax64(xl, wf, xo, wo, n):  # pragma: no cover - numba
    """The channel with the largest float64 product xl[xo + c] * wf[wo + c], first on ties:
    ``conv_one``'s one-cell sums."""
    best = -np.inf
    best_c = 0
    for c in range(n):
        total = np.float64(xl[xo + c]) * np.float64(wf[wo + c])
        if c == 0 or total > best:
            best = total
            best_c = c
    return best_c


@njit(cache=True, boundscheck=False, nogil=True)
def pointwise_backtrack(xl, wf, out_index, g):  # pragma: no cover - numba
    """``conv_backtrack`` for a conv whose every window is one valid input cell (1x1, no leading
    pads), reading its input channels last: the same indices, any location rule.

    The channel argmax runs on float32 products (``_unique_argmax32``); a row it cannot settle
    is redone in float64 exactly as ``shared.conv.conv_one`` does.

    Args:
        xl: the input activations channels last, flat float32 (B * H * W * C).
        wf, out_index, g: as in ``conv_backtrack``.

    Returns:
        int64 flat indices into the (channels-first) input, one per output fixation.
    """
    n_in, height, width = g[0], g[1], g[2]
    c_group = g[4]
    plane = height * width
    result = np.empty(out_index.size, dtype=np.int64)
    keys = np.empty(c_group, dtype=np.int32)
    for f in range(out_index.size):
        b, m, c0, top, left = window_origin(out_index[f], g)
        xo = (b * plane + top * width + left) * n_in + c0
        wo = m * c_group
        best_c = _unique_argmax32(xl[xo : xo + c_group], wf[wo : wo + c_group], keys)
        if best_c < 0:
            best_c = _argmax64(xl, wf, xo, wo, c_group)
        result[f] = ((b * n_in + c0 + best_c) * height + top) * width + left
    return result
