"""Localization metrics of one heat map against ground-truth boxes.

Boxes are ``(x0, y0, x1, y1)`` in photo pixels with ``x1`` and ``y1`` exclusive (the convention of
``Explanation.box``): a box ``(0, 0, 2, 2)`` covers 4 pixels.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np

from fixtrace.errors import OptionError
from fixtrace.render.peak import peak
from fixtrace.validate import number

Box = tuple[int, int, int, int]


def check_box(box: object, name: str = "box") -> Box:
    """A box as four finite numbers (x0, y0, x1, y1).

    Raises:
        OptionError: anything else.
    """
    try:
        values: tuple = tuple(box)  # type: ignore[arg-type]
        ok = len(values) == 4 and all(
            isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) for v in values
        )
    except TypeError:
        ok = False
    if not ok:
        raise OptionError(f"a {name} is four finite numbers (x0, y0, x1, y1), not {box!r}")
    return values


def check_map(heat: object) -> np.ndarray:
    """A map as a finite 2-D array.

    Raises:
        OptionError: not 2-D, or holding NaN or infinity.
    """
    array = np.asarray(heat)
    if array.ndim != 2 or array.dtype.kind not in "biuf":
        raise OptionError(f"a map is a 2-D array of numbers (H, W), not shape {array.shape} of {array.dtype}")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise OptionError("the map holds NaN or infinite values")
    return array


def iou(a: Box | None, b: Box) -> float:
    """Intersection over union of two boxes (0 when ``a`` is None, i.e. no box was found).

    Raises:
        OptionError: a box that is not four finite numbers.
    """
    if a is None:
        return 0.0
    a, b = check_box(a), check_box(b)
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(width, 0) * max(height, 0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def box_found(box: Box | None, truths: Sequence[Box], threshold: float = 0.5) -> bool:
    """True when ``box`` overlaps one of the ground-truth boxes with IoU >= ``threshold``.

    Raises:
        OptionError: a threshold outside (0, 1], or a bad box.
    """
    threshold = number("threshold", threshold, 0.0, 1.0, "--iou", what="an IoU")
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

    The peak is ``render.peak.peak``: on a plateau of equal maxima, the tied cell with the most
    heat around it (then the one nearest the plateau's centroid), never the scan order's first;
    an all-zero map misses.

    Args:
        heat: (H, W) map on the photo.
        truths: ground-truth boxes.
        tolerance: distance in pixels still counted as a hit (Zhang et al. used 15 px on
            ImageNet-sized photos).

    Raises:
        OptionError: a map that is not finite and 2-D, a negative or infinite tolerance, a bad box.
    """
    heat = check_map(heat)
    tolerance = number("tolerance", tolerance, 0.0, math.inf, "--tolerance", low_open=False, what="a distance in pixels")
    truths = [check_box(t) for t in truths]
    at = peak(heat)
    if at is None:
        return False
    return bool(_inside(heat.shape, truths, tolerance)[at])


def energy_in_box(heat: np.ndarray, truths: Sequence[Box]) -> float:
    """Share of the map's (non-negative) mass inside the boxes (Score-CAM's energy pointing game).

    Returns:
        A fraction in [0, 1]; 0 for an all-zero map.

    Raises:
        OptionError: a map that is not finite and 2-D, a bad box.
    """
    heat = check_map(heat)
    truths = [check_box(t) for t in truths]
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
