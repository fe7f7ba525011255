"""The overlay's per-pixel blend (rendering)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, boundscheck=False, nogil=True)
def blend_levels(values, base, keep, colour, scale, offset, fraction, out):  # pragma: no cover - numba
    """out = min(255, (base * keep[level] + colour[level] + half) >> fraction) per channel, with
    level = int(clip(values * scale + offset, 0, levels - 1)): in one pass what numpy computes
    with photo-size uint16 temporaries, to the same bytes.

    Args:
        values: float32 or float64 (h, w) the heat (finite; NaN is drawn as 0).
        base: uint8 (h, w, 3) the photo's pixels (already greyed outside the view).
        keep: uint16 (levels,) the photo's fixed-point weight per level.
        colour: uint16 (levels, 3) the premultiplied colour per level.
        scale, offset: float32, heat -> level.
        fraction: fixed-point bits of ``keep`` and ``colour``.
        out: uint8 (h, w, 3) to fill.
    """
    top = np.float32(keep.shape[0] - 1)
    zero = np.float32(0.0)
    half = 1 << (fraction - 1)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            v = values[i, j] * scale
            v = v + offset
            v = top if v > top else (v if v >= zero else zero)  # NaN: level 0, never outside the tables
            level = int(v)
            k = np.int64(keep[level])
            for c in range(3):
                m = (np.int64(base[i, j, c]) * k + np.int64(colour[level, c]) + half) >> fraction
                out[i, j, c] = 255 if m > 255 else m
