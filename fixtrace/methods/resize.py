"""Maps between grids: a layer's map onto the model input's grid, with torch's conventions."""

from __future__ import annotations

import numpy as np

from fixtrace.model.layer_graph import LayerGraph


def spatial_axes(graph: LayerGraph) -> tuple[int, int, int]:
    """(channel axis, row axis, col axis) of the image input's layout."""
    return (1, 2, 3) if graph.image_input.layout == "NCHW" else (3, 1, 2)


def upsample(maps: np.ndarray, size: tuple[int, int], mode: str = "bilinear") -> np.ndarray:
    """(N, h, w) maps resized to (N, H, W) with torch's ``interpolate`` conventions.

    Args:
        maps: the maps.
        size: (H, W).
        mode: ``"bilinear"`` (align_corners=False: edges clamped) or ``"nearest"``.

    Raises:
        ValueError: another mode.
    """
    n, h, w = maps.shape
    height, width = size
    if mode == "nearest":
        rows = np.minimum((np.arange(height) * (h / height)).astype(np.int64), h - 1)
        cols = np.minimum((np.arange(width) * (w / width)).astype(np.int64), w - 1)
        return maps[:, rows][:, :, cols].astype(np.float32)
    if mode != "bilinear":
        raise ValueError(f"upsample mode must be bilinear or nearest, not {mode!r}")
    r0, r1, fr = _taps(height, h)
    c0, c1, fc = _taps(width, w)
    top = maps[:, r0] * (1 - fr)[None, :, None] + maps[:, r1] * fr[None, :, None]
    return (top[:, :, c0] * (1 - fc)[None, None, :] + top[:, :, c1] * fc[None, None, :]).astype(np.float32)


def _taps(out: int, src: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear source rows (low, high) and the high one's weight for each of ``out`` rows."""
    pos = np.maximum((np.arange(out) + 0.5) * (src / out) - 0.5, 0.0)
    lo = np.minimum(np.floor(pos).astype(np.int64), src - 1)
    hi = np.minimum(lo + 1, src - 1)
    return lo, hi, (pos - lo).astype(np.float32)
