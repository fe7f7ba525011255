"""Peaks that do not depend on scan order, and boxes drawn around the blob holding the peak."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import ROOT
from fixtrace import Explainer
from fixtrace.metrics.localization import pointing_hit
from fixtrace.render.box import box_from_heatmap
from fixtrace.render.peak import peak


def _plateaus() -> np.ndarray:
    """Two plateaus at the map's maximum: a 3x3 one near the top-left and a 40x40 one at the
    bottom-right, on a weak background."""
    heat = np.full((120, 160), 0.05, dtype=np.float32)
    heat[10:13, 10:13] = 1.0
    heat[60:100, 90:130] = 1.0
    return heat


def test_peak_of_a_plateau_is_inside_the_larger_plateau_not_at_the_scan_order_first():
    heat = _plateaus()
    assert np.unravel_index(int(np.argmax(heat)), heat.shape) == (10, 10)  # what argmax would say
    row, col = peak(heat)
    assert 60 <= row < 100 and 90 <= col < 130
    # the plateau's middle (nearest its centroid among the cells with the most heat around them)
    assert abs(row - 79.5) <= 1 and abs(col - 109.5) <= 1


@pytest.mark.parametrize("flip", ["rows", "cols", "both", "transpose"])
def test_peak_follows_the_map_when_it_is_flipped_or_transposed(flip):
    rng = np.random.default_rng(0)
    heat = np.clip(rng.random((64, 80)).astype(np.float32) * 1.5, 0, 1)  # ~a third of the cells tie at 1
    row, col = peak(heat)
    h, w = heat.shape
    turned, expected = {
        "rows": (heat[::-1], (h - 1 - row, col)),
        "cols": (heat[:, ::-1], (row, w - 1 - col)),
        "both": (heat[::-1, ::-1], (h - 1 - row, w - 1 - col)),
        "transpose": (heat.T, (col, row)),
    }[flip]
    assert peak(np.ascontiguousarray(turned)) == expected


def test_peak_of_a_single_maximum_is_argmax_and_of_an_empty_map_none():
    heat = np.zeros((5, 7))
    assert peak(heat) is None
    heat[3, 4] = 2.0
    heat[0, 0] = 1.9
    assert peak(heat) == (3, 4)
    assert peak(np.full((4, 4), -1.0)) is None
    assert peak(np.zeros((0, 3))) is None


def test_pointing_hit_on_a_plateau_map_does_not_depend_on_tie_order():
    heat = _plateaus()
    big, small = (90, 60, 130, 100), (10, 10, 13, 13)  # (x0, y0, x1, y1)
    assert pointing_hit(heat, [big])
    assert not pointing_hit(heat, [small])
    assert pointing_hit(heat[::-1, ::-1], [(160 - 130, 120 - 100, 160 - 90, 120 - 60)])


def test_box_is_drawn_around_the_blob_holding_the_peak():
    heat = np.zeros((100, 100), dtype=np.float32)
    heat[5:45, 5:95] = 0.5  # large, above a 0.2 threshold, no peak
    heat[70:85, 40:55] = 0.6
    heat[77, 47] = 1.0  # the peak, in the small blob
    assert box_from_heatmap(heat, 0.2) == (40, 70, 55, 85)
    assert box_from_heatmap(heat, 0.2, region="largest") == (5, 5, 95, 45)


def test_camera_box_holds_the_tripods_peak():
    """models/images/camera.jpg (tripod, 97.8 %): the fixations peak is on the tripod, and the box
    is drawn around it (it used to be the largest blob: the man's head and the sky)."""
    e = Explainer(ROOT / "models" / "mobilenet_v2.onnx").explain(ROOT / "models" / "images" / "camera.jpg")
    assert e.target.name == "tripod"
    row, col = peak(e.heatmap)
    tripod = (230, 200, 410, 512)  # x0, y0, x1, y1 of the tripod in the 512x512 photo
    assert tripod[0] <= col < tripod[2] and tripod[1] <= row < tripod[3]
    x0, y0, x1, y1 = e.box
    assert x0 <= col < x1 and y0 <= row < y1


#: The object in each bundled photo (x0, y0, x1, y1): the boxes bench/composites.py cuts them by,
#: and the tripod of camera.jpg.
OBJECTS = {"chelsea": (80, 0, 370, 300), "coffee": (170, 20, 420, 260), "camera": (230, 200, 410, 512)}


@pytest.mark.parametrize("method", ["fixations", "gradcam"])
def test_gradual_extrapolation_peak_is_on_the_object(method):
    """GE clips z-scores to [-1, 1]: thousands of pixels tie at the top (the top-left one used to
    be taken as the peak, off the object on all three photos). The tie-free peak is on the object,
    and inside the box."""
    explainer = Explainer(ROOT / "models" / "mobilenet_v2.onnx", method=method, ge=True)
    for name, (x0, y0, x1, y1) in OBJECTS.items():
        e = explainer.explain(ROOT / "models" / "images" / f"{name}.jpg")
        heat = e.heatmap
        assert (heat == heat.max()).sum() > 1000, name  # the plateau is there
        row, col = peak(heat)
        assert x0 <= col < x1 and y0 <= row < y1, (name, row, col)
        bx0, by0, bx1, by1 = e.box
        assert bx0 <= col < bx1 and by0 <= row < by1, name
