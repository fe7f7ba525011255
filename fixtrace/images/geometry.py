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
        mirrored: the crop was flipped left-right before it went in (multi-crop's mirrors).
    """

    original: tuple[int, int]
    resized: tuple[int, int]
    crop: tuple[int, int]
    input: tuple[int, int]
    mirrored: bool = False

    def to_original(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Map input pixel (row, col) centres to photo coordinates.

        Args:
            rows, cols: pixel indices in the model input.

        Returns:
            float64 (n, 2) array of (x, y) in photo pixels, clipped to the photo.
        """
        sx = self.resized[0] / self.original[0]
        sy = self.resized[1] / self.original[1]
        cols = np.asarray(cols, dtype=np.float64)
        if self.mirrored:
            cols = self.input[0] - 1 - cols
        x = (cols + 0.5 + self.crop[0]) / sx - 0.5
        y = (np.asarray(rows, dtype=np.float64) + 0.5 + self.crop[1]) / sy - 0.5
        x = np.clip(x, 0, self.original[0] - 1)
        y = np.clip(y, 0, self.original[1] - 1)
        return np.stack([x, y], axis=1)

    def box_to_original(self, top: int, left: int, bottom: int, right: int) -> tuple[int, int, int, int]:
        """The photo pixels covering input pixels ``[top:bottom, left:right]`` (a receptive field).

        Returns:
            (x0, y0, x1, y1) in photo pixels, x1 and y1 exclusive, clipped to the photo and at least
            one pixel wide and tall.
        """
        xy = self.to_original(np.array([top, bottom - 1]), np.array([left, right - 1]))
        # An input pixel covers half a resized pixel either side of its centre, in photo pixels
        # (1e-9: a rounding error never adds a pixel).
        half_x = 0.5 * self.original[0] / self.resized[0]
        half_y = 0.5 * self.original[1] / self.resized[1]
        width, height = self.original
        x0 = min(max(int(np.floor(xy[:, 0].min() - half_x + 0.5 + 1e-9)), 0), width - 1)
        y0 = min(max(int(np.floor(xy[:, 1].min() - half_y + 0.5 + 1e-9)), 0), height - 1)
        x1 = min(max(int(np.ceil(xy[:, 0].max() + half_x + 0.5 - 1e-9)), x0 + 1), width)
        y1 = min(max(int(np.ceil(xy[:, 1].max() + half_y + 0.5 - 1e-9)), y0 + 1), height)
        return x0, y0, x1, y1

    def to_photo(self, grid: np.ndarray, *, unit: bool = False) -> np.ndarray:
        """A map on the model input's grid resampled onto the photo (bilinear; 0 outside the crop).

        Args:
            grid: float (input height, input width).
            unit: return its ``unit_scale`` (negatives 0, max 1), written in one pass.

        Returns:
            float32 (photo height, photo width), built band by band (no full-size temporaries).
        """
        from fixtrace.render.resample import bilinear

        width, height = self.original
        sx = self.resized[0] / self.original[0]
        sy = self.resized[1] / self.original[1]
        if self.mirrored:
            grid = grid[:, ::-1]
        rows = _inside_edges((np.arange(height, dtype=np.float64) + 0.5) * sy - 0.5 - self.crop[1], grid.shape[0])
        cols = _inside_edges((np.arange(width, dtype=np.float64) + 0.5) * sx - 0.5 - self.crop[0], grid.shape[1])
        return bilinear(grid, rows, cols, unit=unit)

    def view(self) -> tuple[float, float, float, float]:
        """What the model saw of the photo: (x0, y0, x1, y1), the crop's edges in photo pixels
        (pixel x is inside when x0 <= x + 0.5 <= x1), clipped to the photo (a letterbox's
        padding lies outside it: the whole photo was seen)."""
        sx = self.resized[0] / self.original[0]
        sy = self.resized[1] / self.original[1]
        width, height = self.original
        return (
            min(max(self.crop[0] / sx, 0.0), width),
            min(max(self.crop[1] / sy, 0.0), height),
            min(max((self.crop[0] + self.input[0]) / sx, 0.0), width),
            min(max((self.crop[1] + self.input[1]) / sy, 0.0), height),
        )


def _inside_edges(coords: np.ndarray, n: int) -> np.ndarray:
    """Edge pixels of the crop extend half a pixel outwards; beyond that, nothing was seen."""
    coords = np.where((coords > -0.5) & (coords < 0), 0.0, coords)
    return np.where((coords > n - 1) & (coords < n - 0.5), n - 1.0, coords)
