"""Per-photo peak lists of each filter of a conv layer: the only thing the explanatory graph keeps
of a feature map (a few positions and values per filter and photo, never the map itself)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import maximum_filter

from fixtrace.model.receptive_field import ReceptiveField


@dataclass
class Peaks:
    """The strongest local maxima of each filter's map, photo by photo.

    Attributes:
        positions: float32 (photos, filters, P, 2): (row, col) of each peak, in model-input pixels
            (the centre of the peak cell's receptive field).
        values: float32 (photos, filters, P): the map's value there (0: no peak).
    """

    positions: np.ndarray
    values: np.ndarray

    @property
    def filters(self) -> int:
        return self.values.shape[1]


def map_peaks(maps: np.ndarray, field: ReceptiveField, count: int) -> Peaks:
    """The ``count`` largest positive local maxima (3x3 neighbourhood) of each map.

    Args:
        maps: (n, C, H, W) feature maps.
        field: the layer's receptive field (maps a cell to input pixels).
        count: peaks kept per map (fewer real ones are padded with value 0).

    Returns:
        The peaks, strongest first.
    """
    maps = np.asarray(maps, dtype=np.float32)
    n, c, h, w = maps.shape
    local = maximum_filter(maps, size=(1, 1, 3, 3), mode="constant", cval=-np.inf)
    flat = np.where((maps == local) & (maps > 0), maps, 0.0).reshape(n, c, h * w)
    keep = min(count, h * w)
    best = (
        np.argpartition(-flat, keep - 1, axis=2)[:, :, :keep] if keep < h * w else np.broadcast_to(np.arange(h * w), flat.shape)
    )
    values = np.take_along_axis(flat, best, axis=2)
    order = np.argsort(-values, axis=2, kind="stable")
    best, values = np.take_along_axis(best, order, axis=2), np.take_along_axis(values, order, axis=2)
    rows = field.offset[0] + (best // w) * field.stride[0]
    cols = field.offset[1] + (best % w) * field.stride[1]
    positions = np.stack([rows, cols], axis=-1).astype(np.float32)
    if keep < count:  # a map smaller than the peaks asked for
        pad = count - keep
        positions = np.concatenate([positions, np.zeros((n, c, pad, 2), np.float32)], axis=2)
        values = np.concatenate([values, np.zeros((n, c, pad), np.float32)], axis=2)
    return Peaks(positions, values.astype(np.float32))


def join(parts: list[Peaks]) -> Peaks:
    """Batches' peaks stacked along the photos."""
    return Peaks(np.concatenate([p.positions for p in parts]), np.concatenate([p.values for p in parts]))
