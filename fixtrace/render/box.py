"""A bounding box from a heat map: threshold, keep the largest connected blob."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


#: Fraction of the map's max that cuts out the box, per method (``name`` or ``name:ge``): the
#: values with the lowest top-1 localization error on the localization benchmark's validation
#: split (bench/localization.py, bench/RESULTS.md). Other methods use DEFAULT_BOX_THRESHOLD.
BOX_THRESHOLDS: dict[str, float] = {
    "fixations": 0.1,
    "fixations:ge": 0.5,
    "cam": 0.5,
    "gradcam": 0.5,
    "gradcam:ge": 0.9,
    "guided-gradcam": 0.02,
    "saliency": 0.05,
    "guided-backprop": 0.05,
    "centre-gaussian": 0.6,
}
#: CAM's rule (Zhou et al. 2016).
DEFAULT_BOX_THRESHOLD = 0.2


def method_box_threshold(method: str, ge: bool = False) -> float:
    """The box threshold a method's maps are cut at unless one is given."""
    return BOX_THRESHOLDS.get(f"{method}:ge" if ge else method, DEFAULT_BOX_THRESHOLD)


def box_from_heatmap(heat: np.ndarray, threshold: float = DEFAULT_BOX_THRESHOLD) -> tuple[int, int, int, int] | None:
    """Box around the largest connected region where heat >= threshold x max (CAM's rule: 0.2;
    Grad-CAM used 0.15).

    Args:
        heat: (H, W) map.
        threshold: fraction of the map's max.

    Returns:
        (x0, y0, x1, y1) in pixels, x1/y1 exclusive; None for an all-zero map.
    """
    top = float(heat.max()) if heat.size else 0.0
    if top <= 0:
        return None
    labels, n = ndimage.label(heat >= threshold * top)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    sizes[0] = 0
    rows, cols = ndimage.find_objects((labels == int(np.argmax(sizes))).astype(np.int32))[0]
    return int(cols.start), int(rows.start), int(cols.stop), int(rows.stop)
