"""Bilinear resampling of a small map onto a large grid, in bands of rows: photo-size maps are
built in float32 without full-size temporaries (a 100-megapixel photo stays within memory)."""

from __future__ import annotations

import numpy as np

#: Output rows computed per band.
BAND = 256


def bilinear(grid: np.ndarray, rows: np.ndarray, cols: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Sample ``grid`` at every (row, col) of a separable lattice, bilinearly.

    Positions outside ``[0, n - 1]`` on either axis give 0 (clip the coordinates first to
    extend the edges instead), as ``scipy.ndimage.map_coordinates(order=1, mode="constant")``.

    Args:
        grid: (h, w) map.
        rows: (H,) row coordinates in grid pixels.
        cols: (W,) column coordinates in grid pixels.
        out: a float32 (H, W) array to fill (default: a new one).

    Returns:
        float32 (H, W).
    """
    from fixtrace.kernels.cpu.resample import blend_rows  # numba: not for the CLI's parser

    g = np.asarray(grid, dtype=np.float32)
    c0, c1, wc, cvalid = _taps(np.asarray(cols, np.float64), g.shape[1])
    r0, r1, wr, rvalid = _taps(np.asarray(rows, np.float64), g.shape[0])
    if out is None:
        out = np.empty((len(rows), len(cols)), dtype=np.float32)
    # A small grid (upsampling) is resampled along the columns once; a large one (downsampling a
    # photo-size map) band by band, only the grid rows the band reads.
    whole = _across(g, c0, c1, wc, cvalid) if g.shape[0] <= max(len(rows), BAND) else None
    for start in range(0, len(rows), BAND):
        band = slice(start, start + BAND)
        if whole is None:
            first = int(r0[band].min())
            across = _across(g[first : int(r1[band].max()) + 1], c0, c1, wc, cvalid)
        else:
            first, across = 0, whole
        blend_rows(across, r0[band], r1[band], (1 - wr[band]) * rvalid[band], wr[band] * rvalid[band], first, out[band])
    return out


def _across(g: np.ndarray, c0: np.ndarray, c1: np.ndarray, wc: np.ndarray, cvalid: np.ndarray) -> np.ndarray:
    """Every row of ``g`` resampled along the columns."""
    across = g[:, c0] * (1 - wc)
    across += g[:, c1] * wc
    across *= cvalid
    return across


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
