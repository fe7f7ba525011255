"""The peak of a heat map, independent of the order cells are scanned in.

``np.argmax`` takes the first maximum in row-major order: on a map with a plateau at its maximum
(Gradual Extrapolation clips z-scores to 1, so thousands of pixels tie; a saturated map; a
fixations map whose points pile up equally) that is the plateau's top-left corner, and every
metric and box built on it inherits the scan order. Here ties are broken by the neighbourhood:
among the cells at the maximum, the one where a lightly blurred copy of the map is highest; if
that still ties, the tied cell nearest to the tied cells' centroid.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

#: The blur that breaks ties, as a fraction of the map's short side (at least one cell).
TIE_BLUR = 0.02
#: Maps with more cells are searched on a stride (see ``peak``), like boxes.
MAX_EXACT_PIXELS = 24_000_000


def peak(heat: np.ndarray) -> tuple[int, int] | None:
    """(row, col) of the map's maximum, ties broken by neighbourhood then centrality.

    Args:
        heat: (H, W) map (NaN counts as below everything).

    Returns:
        The peak's (row, col); None for a map without a positive maximum (empty or all <= 0).
    """
    if heat.size == 0:
        return None
    values = np.nan_to_num(np.asarray(heat, dtype=np.float64), nan=-np.inf)
    top = float(values.max())
    if not top > 0:
        return None
    tied = np.flatnonzero(values.ravel() == top)
    if tied.size == 1:
        return _cell(int(tied[0]), values.shape)
    stride = max(1, math.ceil(math.sqrt(values.size / MAX_EXACT_PIXELS)))
    small = values[::stride, ::stride]
    sigma = max(1.0, TIE_BLUR * min(small.shape))
    blurred = ndimage.gaussian_filter(np.where(np.isfinite(small), small, 0.0), sigma, mode="constant")
    rows, cols = np.unravel_index(tied, values.shape)
    score = blurred[np.minimum(rows // stride, small.shape[0] - 1), np.minimum(cols // stride, small.shape[1] - 1)]
    best = score == score.max()
    rows, cols = rows[best], cols[best]
    if rows.size == 1:
        return int(rows[0]), int(cols[0])
    centre_row, centre_col = rows.mean(), cols.mean()
    nearest = int(np.argmin((rows - centre_row) ** 2 + (cols - centre_col) ** 2))
    return int(rows[nearest]), int(cols[nearest])


def _cell(flat: int, shape: tuple[int, ...]) -> tuple[int, int]:
    row, col = divmod(flat, shape[1])
    return row, col
