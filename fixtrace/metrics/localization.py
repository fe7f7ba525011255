"""Localization metrics of one heat map against ground-truth boxes.

Boxes are ``(x0, y0, x1, y1)`` in photo pixels with ``x1`` and ``y1`` exclusive (the convention of
``Explanation.box``): a box ``(0, 0, 2, 2)`` covers 4 pixels.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

Box = tuple[int, int, int, int]


def iou(a: Box | None, b: Box) -> float:
    """Intersection over union of two boxes (0 when ``a`` is None, i.e. no box was found)."""
    if a is None:
        return 0.0
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(width, 0) * max(height, 0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def box_found(box: Box | None, truths: Sequence[Box], threshold: float = 0.5) -> bool:
    """True when ``box`` overlaps one of the ground-truth boxes with IoU >= ``threshold``."""
    return any(iou(box, t) >= threshold for t in truths)


def localized(predicted: int, label: int, box: Box | None, truths: Sequence[Box], threshold: float = 0.5) -> bool:
    """ILSVRC top-1 localization: the predicted class is the label and the box is found.

    The top-1 localization error of a dataset is the share of images where this is False.
    """
    return predicted == label and box_found(box, truths, threshold)


def _inside(shape: tuple[int, int], truths: Sequence[Box], margin: float = 0.0) -> np.ndarray:
    """bool (H, W): pixels inside any box, or within ``margin`` pixels of one."""
    rows = np.arange(shape[0], dtype=np.float64)[:, None]
    cols = np.arange(shape[1], dtype=np.float64)[None, :]
    mask = np.zeros(shape, dtype=bool)
    for x0, y0, x1, y1 in truths:
        dx = np.maximum(np.maximum(x0 - cols, cols - (x1 - 1)), 0)
        dy = np.maximum(np.maximum(y0 - rows, rows - (y1 - 1)), 0)
        mask |= dx * dx + dy * dy <= margin * margin
    return mask


def pointing_hit(heat: np.ndarray, truths: Sequence[Box], tolerance: float = 0.0) -> bool:
    """Pointing game (Zhang et al. 2016): the map's peak lies in a box, or within ``tolerance`` px.

    The peak is the first maximum in row-major order; an all-zero map misses.

    Args:
        heat: (H, W) map on the photo.
        truths: ground-truth boxes.
        tolerance: distance in pixels still counted as a hit (Zhang et al. used 15 px on
            ImageNet-sized photos).
    """
    if heat.size == 0 or not float(heat.max()) > 0:
        return False
    row, col = np.unravel_index(int(np.argmax(heat)), heat.shape)
    return bool(_inside(heat.shape, truths, tolerance)[row, col])


def energy_in_box(heat: np.ndarray, truths: Sequence[Box]) -> float:
    """Share of the map's (non-negative) mass inside the boxes (Score-CAM's energy pointing game).

    Returns:
        A fraction in [0, 1]; 0 for an all-zero map.
    """
    positive = np.maximum(heat.astype(np.float64), 0)
    total = positive.sum()
    return float(positive[_inside(heat.shape, truths)].sum() / total) if total > 0 else 0.0


def centre_gaussian(size: tuple[int, int], sigma: float = 0.25) -> np.ndarray:
    """The image-blind baseline map: a Gaussian at the photo's centre.

    Args:
        size: photo (width, height).
        sigma: standard deviation as a fraction of each side.

    Returns:
        float32 (height, width), peak 1 at the centre.
    """
    width, height = size
    x = (np.arange(width) + 0.5 - width / 2) / (sigma * width)
    y = (np.arange(height) + 0.5 - height / 2) / (sigma * height)
    return np.exp(-0.5 * (y[:, None] ** 2 + x[None, :] ** 2)).astype(np.float32)
