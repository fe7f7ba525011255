"""A bounding box from a heat map: threshold, keep one connected blob (the one holding the
map's peak, or the largest)."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from fixtrace.render.peak import peak

#: Fraction of the map's max that cuts out the box, per method (``name`` or ``name:ge``): the
#: values with the lowest top-1 localization error on the localization benchmark's validation
#: split (bench/localization.py, bench/RESULTS.md). Other methods use DEFAULT_BOX_THRESHOLD.
BOX_THRESHOLDS: dict[str, float] = {
    "fixations": 0.6,
    "fixations:ge": 0.8,
    "cam": 0.5,
    "gradcam": 0.5,
    "gradcam:ge": 0.9,
    "guided-gradcam": 0.02,
    "saliency": 0.05,
    "guided-backprop": 0.05,
    "gradcam++": 0.5,
    "layercam": 0.5,
    "xgradcam": 0.5,
    "integrated-gradients": 0.02,
    "smoothgrad": 0.2,
    "centre-gaussian": 0.6,
}
#: CAM's rule (Zhou et al. 2016).
DEFAULT_BOX_THRESHOLD = 0.2
#: Maps with more pixels are cut on a stride (see ``box_from_heatmap``).
MAX_EXACT_PIXELS = 24_000_000
#: Which blob above the threshold the box is drawn around: ``"peak"``, the one holding the map's
#: peak (``render.peak``), or ``"largest"``, the one with the most pixels (CAM's rule).
BOX_REGIONS = ("peak", "largest")
BOX_REGION = "peak"


def method_box_threshold(method: str, ge: bool = False) -> float:
    """The box threshold a method's maps are cut at unless one is given."""
    return BOX_THRESHOLDS.get(f"{method}:ge" if ge else method, DEFAULT_BOX_THRESHOLD)


def box_from_heatmap(
    heat: np.ndarray, threshold: float = DEFAULT_BOX_THRESHOLD, region: str = BOX_REGION
) -> tuple[int, int, int, int] | None:
    """Box around one connected region where heat >= threshold x max (CAM's rule: 0.2; Grad-CAM
    used 0.15): the region holding the map's peak (default), or the largest (CAM's rule; a
    large blob of background can then win over a smaller one holding the peak).

    A map over MAX_EXACT_PIXELS (a photo of tens of megapixels) is cut on every k-th pixel, k the
    smallest stride that brings it under: the box is then exact to k pixels, and memory bounded.

    Args:
        heat: (H, W) map.
        threshold: fraction of the map's max.
        region: ``"peak"`` or ``"largest"`` (BOX_REGIONS).

    Returns:
        (x0, y0, x1, y1) in pixels, x1/y1 exclusive; None for an all-zero map.
    """
    top = float(heat.max()) if heat.size else 0.0
    if top <= 0:
        return None
    stride = max(1, math.ceil(math.sqrt(heat.size / MAX_EXACT_PIXELS)))
    labels, n = ndimage.label(heat[::stride, ::stride] >= threshold * top)
    chosen = 0
    if region == "peak":
        at = peak(heat)
        if at is not None:
            chosen = int(labels[min(at[0] // stride, labels.shape[0] - 1), min(at[1] // stride, labels.shape[1] - 1)])
    if chosen == 0:  # "largest", or a peak the strided cut missed
        sizes = ndimage.histogram(labels, 1, n, n)  # pixels per region, without an int64 copy of the labels
        chosen = int(np.argmax(sizes)) + 1
    rows, cols = ndimage.find_objects(labels, max_label=chosen)[chosen - 1]
    height, width = heat.shape
    return (
        int(cols.start) * stride,
        int(rows.start) * stride,
        min(int(cols.stop) * stride, width),
        min(int(rows.stop) * stride, height),
    )
