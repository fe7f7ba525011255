"""A method's maps for a batch -> one Explanation per photo: the heat map on the photo (points
blurred for fixations, the map resampled otherwise), the box, the record."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from fixtrace.errors import ModelError
from fixtrace.explanation import ClassScore, Explanation
from fixtrace.images.crops import union_view
from fixtrace.images.geometry import Geometry
from fixtrace.methods.base import Maps
from fixtrace.render.display import Display, Style
from fixtrace.render.heatmap import heatmap, inlier_mask
from fixtrace.render.resample import unit_scale


def explanation(
    maps: Maps, item: int, photo: np.ndarray, geometry: Geometry, *args: Any, bgr: bool = False, **options: Any
) -> Explanation:
    """Photo ``item`` of a batch explained by ``maps``.

    Args:
        maps: what the method made for the batch.
        item: the photo's row in the batch.
        photo: the photo, uint8 (h, w, 3).
        geometry: how the model input was cut from it.
        *args, **options: as ``merged_explanation``'s after ``geometries``.
        bgr: the model takes BGR (the gradient picture is turned back to RGB).

    Raises:
        ModelError: the map is not finite (the model overflows float32 on this photo).
    """
    made = merged_explanation(maps, [item], photo, [geometry], *args, **options)
    gradient = None if maps.gradients is None else (maps.gradients[item][..., ::-1] if bgr else maps.gradients[item])
    per_layer = maps.per_layer[item] if maps.per_layer is not None else {}
    return replace(made, input_map=maps.maps[item], per_layer=per_layer, geometry=geometry, gradient=gradient)


def merged_explanation(
    maps: Maps,
    items: list[int],
    photo: np.ndarray,
    geometries: list[Geometry],
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
) -> Explanation:
    """One photo explained by rows ``items`` of the batch, cut from it by ``geometries`` (several
    crops of it, or one row): their fixation points merged on the photo (counts summed where two
    crops reach the same pixel) and blurred, or their maps, each scaled to a maximum of 1, summed on
    the photo. The result has no input map, per-layer fixations or signed gradient (each crop has
    its own; ``explanation`` adds them for one row).

    Args:
        maps: what the method made for the batch.
        items: the rows of this photo.
        photo: the photo, uint8 (h, w, 3).
        geometries: how each row was cut from it.
        target, top_classes: the explained class and the model's best ones.
        outlier_removal, sigma: how fixation points become a heat map.
        box_threshold: fraction of the map's max that cuts out the box.
        settings, info: the record (method options; model, backend, timings).
        display, style, notes: the method's display defaults, the pictures' style, the method's
            notes on this model.

    Raises:
        ModelError: a map is not finite (the model overflows float32 on this photo).
    """
    original = geometries[0].original
    grids = [_finite(maps.maps[i], settings) for i in items]
    found = [_photo_points(maps, i, g) for i, g in zip(items, geometries)]
    points, counts = found[0]
    if len(found) > 1:
        points, inverse = np.unique(np.concatenate([p for p, _ in found]), axis=0, return_inverse=True)
        counts = np.bincount(inverse.ravel(), weights=np.concatenate([c for _, c in found]), minlength=len(points))
    inliers = inlier_mask(points, counts, original) if outlier_removal else np.ones(len(points), dtype=bool)
    if maps.heat_from_points:
        heat = heatmap(points[inliers], counts[inliers], original, sigma)
    elif len(grids) == 1:
        heat = _on_photo(maps, grids[0], geometries[0])
    else:
        heat = np.zeros((original[1], original[0]), dtype=np.float32)
        for grid, geometry in zip(grids, geometries):
            heat += _on_photo(maps, grid, geometry)
        heat = unit_scale(heat)
    return Explanation(
        image=photo,
        target=target,
        top_classes=top_classes,
        points=points,
        counts=counts,
        inliers=inliers,
        heatmap=heat,
        per_layer={},
        box_threshold=box_threshold,
        settings=settings,
        info=info,
        photo_size=original,
        has_points=maps.points is not None,
        geometry=union_view(geometries) if len(geometries) > 1 else geometries[0],
        display=display or Display(),
        style=style or Style(),
        notes=list(notes or []),
    )


def _finite(grid: np.ndarray, settings: dict[str, Any]) -> np.ndarray:
    """``grid``, checked to be finite.

    Raises:
        ModelError: it is not.
    """
    if not np.isfinite(grid).all():
        raise ModelError(
            f"the {settings.get('method', 'method')} map is not finite (NaN or infinity): the model's "
            "activations overflow float32 on this input"
        )
    return grid


def _photo_points(maps: Maps, item: int, geometry: Geometry) -> tuple[np.ndarray, np.ndarray]:
    """Row ``item``'s fixation points as photo (x, y) and their counts (none for a method without points)."""
    if maps.points is None:
        return np.zeros((0, 2)), np.zeros(0)
    rows, cols, counts = maps.points[item]
    return geometry.to_original(rows, cols), np.asarray(counts, dtype=np.float64)


def _on_photo(maps: Maps, grid: np.ndarray, geometry: Geometry) -> np.ndarray:
    """A map on the input grid resampled onto the photo (shifted to a minimum of 0 where the
    method's values are relative), negatives set to 0 and scaled to a maximum of 1."""
    return geometry.to_photo(grid - grid.min() if maps.relative else grid, unit=True)
