"""Fixation points -> outlier mask and a Gaussian heat map."""

from __future__ import annotations

import numpy as np

from fixtrace.render.resample import bilinear, pixel_centres, unit_scale

#: Blur sigma as a fraction of the photo's short side: the value with the lowest mean top-1
#: localization error of the default fixations on the localization benchmark's validation split,
#: and the most two-object images right on bench/two_objects.py's (bench/RESULTS.md; the authors
#: blurred with 20 px on 256 px photos, 0.078).
DEFAULT_SIGMA = 0.12
#: Short side of the grid the blur is computed on before resizing to the photo.
WORK_SIDE = 64
#: Grid rows per matrix product: a product this small stays on the calling thread in
#: OpenBLAS, whose worker threads took ~10 ms to wake on a loaded machine for a 0.05 ms product.
ROWS_PER_PRODUCT = 16


def inlier_mask(
    xy: np.ndarray, counts: np.ndarray, size: tuple[int, int], radius: float = 0.1, share: float = 0.05
) -> np.ndarray:
    """Keep a point when the points within ``radius`` x image diagonal of it (itself included,
    weighted by count) hold more than ``share`` of all the counts (the authors' rule).

    Args:
        xy: (n, 2) positions in photo pixels.
        counts: (n,) counts.
        size: photo (width, height).
        radius: neighbourhood radius as a fraction of the diagonal.
        share: minimum share of the total count.

    Returns:
        bool (n,) mask of the points to keep.
    """
    from fixtrace.kernels.cpu.points import neighbour_mass  # numba: not for the CLI's parser (DEFAULT_SIGMA)

    if len(xy) == 0:
        return np.zeros(0, dtype=bool)
    diagonal = float(np.hypot(*size))
    mass = neighbour_mass(
        np.ascontiguousarray(xy, dtype=np.float64), np.ascontiguousarray(counts, dtype=np.float64), radius * diagonal
    )
    return mass > share * counts.sum()


def heatmap(xy: np.ndarray, counts: np.ndarray, size: tuple[int, int], sigma: float = DEFAULT_SIGMA) -> np.ndarray:
    """Sum of Gaussians at the points, weighted by count, scaled so the max is 1.

    The sum is computed exactly on a grid whose short side is ``WORK_SIDE`` (separable:
    small matrix products), then resized bilinearly to the photo, band by band: the map is
    smooth at this sigma, so nothing is lost.

    Args:
        xy: (n, 2) positions in photo pixels.
        counts: (n,) weights.
        size: photo (width, height).
        sigma: Gaussian sigma as a fraction of the photo's short side.

    Returns:
        float32 (height, width) in [0, 1] (all zeros when there are no points).
    """
    width, height = size
    scale = min(1.0, WORK_SIDE / min(width, height))
    grid_w, grid_h = max(1, round(width * scale)), max(1, round(height * scale))
    if len(xy) == 0:
        return np.zeros((height, width), dtype=np.float32)
    s = sigma * min(width, height) * scale
    gx = (xy[:, 0] + 0.5) * (grid_w / width) - 0.5
    gy = (xy[:, 1] + 0.5) * (grid_h / height) - 0.5
    cols = np.exp(-((np.arange(grid_w)[None, :] - gx[:, None]) ** 2) / (2 * s * s))
    rows = np.exp(-((np.arange(grid_h)[:, None] - gy[None, :]) ** 2) / (2 * s * s)) * counts[None, :]
    grid = np.concatenate([rows[k : k + ROWS_PER_PRODUCT] @ cols for k in range(0, grid_h, ROWS_PER_PRODUCT)])
    grid = grid.astype(np.float32)
    if (grid_w, grid_h) != (width, height):  # PIL's bilinear upscaling: half-pixel centres, edges extended
        return bilinear(grid, pixel_centres(height, grid_h), pixel_centres(width, grid_w), unit=True)
    return unit_scale(grid)  # every value is >= 0: in [0, 1] as it stands
