"""Multi-crop inputs (the authors' test-time 10 crops): the four corners and the centre of the
resized photo, and their mirrors, each with the Geometry that maps it back onto the photo."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fixtrace.errors import OptionError
from fixtrace.images.geometry import Geometry
from fixtrace.images.preprocess import input_size, resized_photo, to_tensor
from fixtrace.images.presets import Preset
from fixtrace.model.layer_graph import ImageInput

#: How many crops multi-crop takes: the centre; the centre and its mirror; the corners and the
#: centre; those and their mirrors (Krizhevsky et al.'s and the fixations paper's 10 crops).
CROP_COUNTS = (1, 2, 5, 10)
#: Resized side / crop side where a preset resizes straight to the input (``exact``): ImageNet's
#: 256 / 224, which gives the corners their room.
CORNER_MARGIN = 256 / 224


@dataclass(frozen=True)
class Crop:
    """One crop of a photo, preprocessed.

    Attributes:
        name: ``centre``, ``top-left``, ... with ``mirrored`` appended for the mirrors.
        sample: the model input sample.
        geometry: how it was cut from the photo (``mirrored`` set for the mirrors).
    """

    name: str
    sample: np.ndarray
    geometry: Geometry


def crop_count(value: Any, preset: Preset, fixed_batch: int | None = None) -> int:
    """``value`` checked to be one of ``CROP_COUNTS`` that ``preset`` can cut and one forward can run.

    Args:
        value: the count asked for.
        preset: the preprocessing.
        fixed_batch: the model's fixed batch dim (None: any batch): a photo's crops run in one forward.

    Raises:
        OptionError: a count not in ``CROP_COUNTS``, corners asked of a letterbox preset
            (which shows the model the whole photo: there is nothing to crop), or more crops
            than the model's fixed batch dim.
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) not in CROP_COUNTS:
        raise OptionError(f"crops (--crops) must be one of {', '.join(map(str, CROP_COUNTS))}, not {value!r}")
    if value >= 5 and preset.resize == "letterbox":
        raise OptionError(
            f"crops={value} cuts corners from a resized photo; the {preset.name} preset letterboxes the whole "
            "photo into the input, so there are no corners to cut: use crops=2 (the mirror) or another preset"
        )
    if fixed_batch and value > fixed_batch:
        raise OptionError(
            f"crops={value} runs {value} crops in one forward, but the model takes a fixed batch of {fixed_batch}: "
            f"use crops={max(c for c in CROP_COUNTS if c <= fixed_batch)} or a model with a free batch dim"
        )
    return int(value)


def crops_of(rgb: np.ndarray, spec: ImageInput, preset: Preset, count: int, size: tuple[int, int] | None = None) -> list[Crop]:
    """The photo's ``count`` crops, centre first, then the corners, then the mirrors in that order.

    Args:
        rgb: uint8 (H, W, 3) photo (or a reduced copy of it, with ``size`` its own size).
        spec: the model's image input.
        preset: the preprocessing; an ``exact`` resize grows by ``CORNER_MARGIN`` for the corners.
        count: one of ``CROP_COUNTS``.
        size: the photo's own (width, height), as in ``preprocess``.

    Raises:
        OptionError: ``count`` refused by ``crop_count``.
        ImageError: the photo's aspect ratio is too extreme to resize.
    """
    count = crop_count(count, preset)
    width, height = input_size(spec, preset)
    image, original = resized_photo(rgb, spec, preset, size, at_least=CORNER_MARGIN if count >= 5 else 1.0)
    right, bottom = image.size[0] - width, image.size[1] - height
    places = {"centre": (int(round(right / 2.0)), int(round(bottom / 2.0)))}
    if count >= 5:
        places |= {"top-left": (0, 0), "top-right": (right, 0), "bottom-left": (0, bottom), "bottom-right": (right, bottom)}
    made = []
    for mirrored in (False, True) if count in (2, 10) else (False,):
        for name, (left, top) in places.items():
            pixels = np.asarray(image.crop((left, top, left + width, top + height)), dtype=np.float32)
            if mirrored:
                pixels = pixels[:, ::-1]
            geometry = Geometry(original, image.size, (left, top), (width, height), mirrored=mirrored)
            made.append(Crop(name + (" mirrored" if mirrored else ""), to_tensor(pixels, spec, preset), geometry))
    return made


def union_view(geometries: list[Geometry]) -> Geometry:
    """One Geometry whose view covers every crop's (for the merged map's picture)."""
    first = geometries[0]
    left = min(g.crop[0] for g in geometries)
    top = min(g.crop[1] for g in geometries)
    right = max(g.crop[0] + g.input[0] for g in geometries)
    bottom = max(g.crop[1] + g.input[1] for g in geometries)
    return Geometry(first.original, first.resized, (left, top), (right - left, bottom - top))
