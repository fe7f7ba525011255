"""Where each model-input pixel came from in the original photo."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Geometry:
    """The resize-then-crop that turned the photo into the model input.

    Attributes:
        original: photo (width, height).
        resized: (width, height) after resizing.
        crop: (left, top) of the crop inside the resized image.
        input: model input (width, height).
    """

    original: tuple[int, int]
    resized: tuple[int, int]
    crop: tuple[int, int]
    input: tuple[int, int]

    def to_original(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Map input pixel (row, col) centres to photo coordinates.

        Args:
            rows, cols: pixel indices in the model input.

        Returns:
            float64 (n, 2) array of (x, y) in photo pixels, clipped to the photo.
        """
        sx = self.resized[0] / self.original[0]
        sy = self.resized[1] / self.original[1]
        x = (np.asarray(cols, dtype=np.float64) + 0.5 + self.crop[0]) / sx - 0.5
        y = (np.asarray(rows, dtype=np.float64) + 0.5 + self.crop[1]) / sy - 0.5
        x = np.clip(x, 0, self.original[0] - 1)
        y = np.clip(y, 0, self.original[1] - 1)
        return np.stack([x, y], axis=1)

    def to_photo(self, grid: np.ndarray) -> np.ndarray:
        """A map on the model input's grid resampled onto the photo (bilinear; 0 outside the crop).

        Args:
            grid: float (input height, input width).

        Returns:
            float32 (photo height, photo width).
        """
        from scipy.ndimage import map_coordinates

        width, height = self.original
        sx = self.resized[0] / self.original[0]
        sy = self.resized[1] / self.original[1]
        rows = (np.arange(height, dtype=np.float64) + 0.5) * sy - 0.5 - self.crop[1]
        cols = (np.arange(width, dtype=np.float64) + 0.5) * sx - 0.5 - self.crop[0]
        rr, cc = np.meshgrid(rows, cols, indexing="ij")
        # Edge pixels of the crop extend half a pixel outwards; beyond that, nothing was seen.
        rr = np.where((rr > -0.5) & (rr < 0), 0.0, np.where((rr > grid.shape[0] - 1) & (rr < grid.shape[0] - 0.5), grid.shape[0] - 1, rr))
        cc = np.where((cc > -0.5) & (cc < 0), 0.0, np.where((cc > grid.shape[1] - 1) & (cc < grid.shape[1] - 0.5), grid.shape[1] - 1, cc))
        return map_coordinates(grid.astype(np.float32), [rr, cc], order=1, mode="constant", cval=0.0).astype(np.float32)
