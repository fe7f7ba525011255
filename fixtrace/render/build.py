"""A method's maps for a batch -> one Explanation per photo: the heat map on the photo (points
blurred for fixations, the map resampled otherwise), the box, the record."""

from __future__ import annotations

from typing import Any

import numpy as np

from fixtrace.errors import ModelError
from fixtrace.explanation import ClassScore, Explanation
from fixtrace.images.geometry import Geometry
from fixtrace.methods.base import Maps
from fixtrace.render.display import Display, Style
from fixtrace.render.heatmap import heatmap, inlier_mask
from fixtrace.render.resample import unit_scale


def explanation(
    maps: Maps,
    item: int,
    photo: np.ndarray,
    geometry: Geometry,
    target: ClassScore,
    top_classes: list[ClassScore],
    *,
    outlier_removal: bool,
    sigma: float,
    box_threshold: float,
    settings: dict[str, Any],
    info: dict[str, Any],
    display: Display | None = None,
    style: Style | None = None,
    notes: list[str] | None = None,
    bgr: bool = False,
) -> Explanation:
    """Photo ``item`` of a batch explained by ``maps``.

    Args:
        maps: what the method made for the batch.
        item: the photo's row in the batch.
        photo: the photo, uint8 (h, w, 3).
        geometry: how the model input was cut from it.
        target, top_classes: the explained class and the model's best ones.
        outlier_removal, sigma: how fixation points become a heat map.
        box_threshold: fraction of the map's max that cuts out the box.
        settings, info: the record (method options; model, backend, timings).
        display, style, notes: the method's display defaults, the pictures' style, the method's
            notes on this model.
        bgr: the model takes BGR (the gradient picture is turned back to RGB).

    Raises:
        ModelError: the map is not finite (the model overflows float32 on this photo).
    """
    original = geometry.original
    input_map = maps.maps[item]
    if not np.isfinite(input_map).all():
        raise ModelError(
            f"the {settings.get('method', 'method')} map is not finite (NaN or infinity): the model's "
            "activations overflow float32 on this input"
        )
    points, counts, inliers = np.zeros((0, 2)), np.zeros(0), np.zeros(0, dtype=bool)
    if maps.points is not None:
        rows, cols, counts = maps.points[item]
        points = geometry.to_original(rows, cols)
        inliers = inlier_mask(points, counts, original) if outlier_removal else np.ones(len(points), dtype=bool)
    if maps.heat_from_points:
        heat = heatmap(points[inliers], counts[inliers], original, sigma)
    else:
        heat = unit_scale(geometry.to_photo(input_map - input_map.min() if maps.relative else input_map))
    return Explanation(
        image=photo,
        target=target,
        top_classes=top_classes,
        points=points,
        counts=counts,
        inliers=inliers,
        heatmap=heat,
        per_layer=maps.per_layer[item] if maps.per_layer is not None else {},
        box_threshold=box_threshold,
        settings=settings,
        info=info,
        input_map=input_map,
        photo_size=original,
        has_points=maps.points is not None,
        geometry=geometry,
        display=display or Display(),
        style=style or Style(),
        gradient=None if maps.gradients is None else (maps.gradients[item][..., ::-1] if bgr else maps.gradients[item]),
        notes=list(notes or []),
    )
