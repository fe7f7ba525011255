"""The numbers an audit keeps per map: box, peak, spread (normalised entropy), mass inside the
ground-truth boxes and the pointing game; and how much two methods' maps agree."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from fixtrace.explanation import Explanation
from fixtrace.metrics.localization import Box, energy_in_box, pointing_hit
from fixtrace.render.peak import peak
from fixtrace.render.resample import bilinear, pixel_centres


def map_measures(e: Explanation, boxes: tuple[Box, ...] | None) -> dict[str, Any]:
    """One method's numbers on one photo.

    Args:
        e: the explanation.
        boxes: ground-truth boxes on the photo (None: no ``--boxes``; empty: none for this photo).

    Returns:
        ``box`` and ``peak`` (photo pixels; None for an empty map), ``entropy`` of the heat map
        on the input grid (0: all on one pixel, 1: spread evenly; None for an empty map),
        ``energy_in_boxes`` and ``pointing_hit`` (None without boxes for the photo; 0 and False
        for an empty map), ``empty``.
    """
    empty = e.empty
    heat = e.heatmap
    at = None if empty else peak(heat)
    top = None if at is None else [at[1], at[0]]
    return {
        "box": list(e.box) if e.box and not empty else None,
        "peak": top,
        "entropy": None if empty else normalised_entropy(on_input_grid(e)),
        "energy_in_boxes": (0.0 if empty else energy_in_box(heat, boxes)) if boxes else None,
        "pointing_hit": (False if empty else pointing_hit(heat, boxes)) if boxes else None,
        "empty": empty,
    }


def normalised_entropy(values: np.ndarray) -> float | None:
    """Shannon entropy of the map's non-negative mass as a distribution, over log(pixels): 0 when
    all mass is on one pixel, 1 when it is spread evenly; None for a map without mass."""
    mass = np.maximum(np.nan_to_num(np.asarray(values, dtype=np.float64)), 0).ravel()
    total = mass.sum()
    if mass.size < 2 or not total > 0:
        return None
    p = mass[mass > 0] / total
    return float(-(p * np.log(p)).sum() / math.log(mass.size))


def agreement(by_method: dict[str, Explanation]) -> dict[str, float | None]:
    """Pearson r of every pair of heat maps, keyed ``"a|b"``, both sampled on a grid of the model
    input's size (fixations' raw counts are too sparse to compare; their blurred map is used).
    None when a map is constant or not finite."""
    grids = {label: on_input_grid(e) for label, e in by_method.items()}
    return {f"{a}|{b}": pearson(grids[a], grids[b]) for a, b in itertools.combinations(grids, 2)}


def on_input_grid(e: Explanation) -> np.ndarray:
    """The heat map sampled (bilinear) on a grid the size of the model input's map."""
    height, width = e.input_map.shape[:2] if e.input_map is not None and e.input_map.ndim >= 2 else e.heatmap.shape
    heat = e.heatmap
    return bilinear(heat, pixel_centres(height, heat.shape[0]), pixel_centres(width, heat.shape[1]))


def pearson(a: np.ndarray, b: np.ndarray) -> float | None:
    """Pearson correlation of two maps of one shape (None when either is constant or not finite)."""
    if a.shape != b.shape:
        return None
    x, y = (np.asarray(m, dtype=np.float64).ravel() for m in (a, b))
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        return None
    x, y = x - x.mean(), y - y.mean()
    norm = math.sqrt(float(x @ x) * float(y @ y))
    return float(x @ y / norm) if norm > 0 else None
