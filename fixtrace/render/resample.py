"""Bilinear resampling of a small map onto a large grid, in bands of rows: photo-size maps are
built in float32 without full-size temporaries (a 100-megapixel photo stays within memory)."""

from __future__ import annotations

import numpy as np

#: Output rows computed per band.
BAND = 256


def bilinear(
    grid: np.ndarray, rows: np.ndarray, cols: np.ndarray, out: np.ndarray | None = None, *, unit: bool = False
) -> np.ndarray:
    """Sample ``grid`` at every (row, col) of a separable lattice, bilinearly.

    Positions outside ``[0, n - 1]`` on either axis give 0 (clip the coordinates first to
    extend the edges instead), as ``scipy.ndimage.map_coordinates(order=1, mode="constant")``.

    Args:
        grid: (h, w) map.
        rows: (H,) row coordinates in grid pixels.
        cols: (W,) column coordinates in grid pixels.
        out: a float32 (H, W) array to fill (default: a new one).
        unit: return ``unit_scale`` of the result (the same values), computed without passes
            over the result when it is upsampled.

    Returns:
        float32 (H, W).
    """
    from fixtrace.kernels.cpu.resample import blend_columns, blend_rows, blend_rows_max  # numba: not for the CLI's parser

    g = np.ascontiguousarray(grid, dtype=np.float32)
    c0, c1, wc, cvalid = _taps(np.asarray(cols, np.float64), g.shape[1])
    r0, r1, wr, rvalid = _taps(np.asarray(rows, np.float64), g.shape[0])
    w_first, w_second = (1 - wr) * rvalid, wr * rvalid
    if out is None:
        out = np.empty((len(rows), len(cols)), dtype=np.float32)
    # A small grid (upsampling) is resampled along the columns once; a large one (downsampling a
    # photo-size map) band by band, only the grid rows the band reads.
    if g.shape[0] <= max(len(rows), BAND):
        across = blend_columns(g, c0, c1, wc, cvalid)
        if not unit:
            blend_rows(across, r0, r1, w_first, w_second, 0, out, np.float32(0))
            return out
        top = blend_rows_max(across, r0, r1, w_first, w_second, 0) if np.isfinite(across).all() else np.nan
        if not np.isfinite(top):  # a NaN or an infinity: numpy's own rules for them
            blend_rows(across, r0, r1, w_first, w_second, 0, out, np.float32(0))
            return unit_scale(out)
        if top <= 0:
            out[...] = 0
            return out
        blend_rows(across, r0, r1, w_first, w_second, 0, out, np.float32(top))
        return out
    for start in range(0, len(rows), BAND):
        band = slice(start, start + BAND)
        first = int(r0[band].min())
        across = blend_columns(g[first : int(r1[band].max()) + 1], c0, c1, wc, cvalid)
        blend_rows(across, r0[band], r1[band], w_first[band], w_second[band], first, out[band], np.float32(0))
    return unit_scale(out) if unit else out


def _taps(coords: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(first tap, second tap, weight of the second, 1 where inside) per coordinate."""
    valid = ((coords >= 0) & (coords <= n - 1)).astype(np.float32)
    clipped = np.clip(coords, 0, n - 1)
    first = np.minimum(np.floor(clipped).astype(np.intp), max(n - 2, 0))
    second = np.minimum(first + 1, n - 1)
    return first, second, (clipped - first).astype(np.float32), valid


def pixel_centres(size: int, source: int) -> np.ndarray:
    """Coordinates, in a grid of ``source`` cells, of the centres of ``size`` cells covering the
    same extent (the half-pixel convention of PIL and OpenCV), clipped to the grid."""
    return np.clip((np.arange(size, dtype=np.float64) + 0.5) * (source / size) - 0.5, 0, source - 1)


def unit_scale(values: np.ndarray) -> np.ndarray:
    """A map's negatives set to 0 and the rest scaled to a maximum of 1, in place (float32)."""
    values = np.asarray(values, dtype=np.float32)
    np.maximum(values, 0, out=values)
    top = float(values.max()) if values.size else 0.0
    if top > 0:
        values /= top
    return values


def to_uint8(values: np.ndarray, gain: float = 1.0) -> np.ndarray:
    """A [0, 1] map times ``gain`` as 8-bit grey (clipped to 1 first), rounded, band by band."""
    out = np.empty(values.shape, dtype=np.uint8)
    for start in range(0, len(values), BAND):
        band = slice(start, start + BAND)
        out[band] = np.clip(values[band] * (255.0 * gain) + 0.5, 0, 255)
    return out
