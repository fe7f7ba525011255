"""Window geometry and the tie rule shared by the conv and pool bodies.

Tie rule: among equal scores, the position nearest the window centre wins (squared distance
in kernel-index units); remaining ties go to the first position in raster order. Taking the
first maximum instead drifts locations towards the top-left after ReLU zeros.
"""

from __future__ import annotations

from numba.extending import register_jitable


@register_jitable
def centre_distance(i: int, j: int, kh: int, kw: int) -> int:
    """Twice-scaled squared distance of kernel cell (i, j) from the kernel centre (integer, exact)."""
    di = 2 * i - (kh - 1)
    dj = 2 * j - (kw - 1)
    return di * di + dj * dj


@register_jitable
def keep_best(score: float, dist: int, y: int, x: int, best_score: float, best_dist: int, best_y: int, best_x: int):
    """The running argmax under the tie rule: (score, dist, y, x) if it beats the best so far, else the best."""
    if score > best_score or (score == best_score and dist < best_dist):
        return score, dist, y, x
    return best_score, best_dist, best_y, best_x


@register_jitable
def unravel4(flat: int, channels: int, height: int, width: int):
    """(batch, channel, row, col) of a flat index into a (B, channels, height, width) tensor."""
    col = flat % width
    row = (flat // width) % height
    channel = (flat // (width * height)) % channels
    return flat // (width * height * channels), channel, row, col


@register_jitable
def taps(start: int, dilation: int, k: int, size: int):
    """The kernel taps lo..hi-1 whose positions start + t * dilation fall inside 0..size-1.

    Every window loop iterates over these instead of testing each tap: padding contributes
    nothing and is never a fixation.
    """
    lo = (-start + dilation - 1) // dilation
    hi = (size - start + dilation - 1) // dilation
    return (lo if lo > 0 else 0), (hi if hi < k else k)


@register_jitable
def clamp(v: int, lo: int, hi: int) -> int:
    """``v`` limited to lo..hi."""
    return lo if v < lo else (hi if v > hi else v)
