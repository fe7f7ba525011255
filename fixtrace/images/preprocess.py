"""Preprocessing presets: photo -> model input tensor, plus the Geometry to go back."""

from __future__ import annotations

import numpy as np
from PIL import Image

from fixtrace.errors import ImageError
from fixtrace.images.geometry import Geometry
from fixtrace.images.presets import PRESETS, Preset, get_preset
from fixtrace.model.layer_graph import ImageInput

__all__ = ["PRESETS", "Preset", "get_preset", "input_size", "preprocess", "resized_photo", "to_tensor"]


def input_size(spec: ImageInput, preset: Preset) -> tuple[int, int]:
    """(width, height) of the model input: the graph's, else the preset's default."""
    return (spec.width or preset.default_size, spec.height or preset.default_size)


def preprocess(
    rgb: np.ndarray,
    spec: ImageInput,
    preset: Preset,
    size: tuple[int, int] | None = None,
) -> tuple[np.ndarray, Geometry]:
    """Turn an RGB photo into one model input sample.

    Args:
        rgb: uint8 (H, W, 3).
        spec: the model's image input (layout, channels, size).
        preset: the preprocessing to apply.
        size: the photo's own (width, height) when ``rgb`` is a reduced copy of it (``Photo``):
            the geometry maps the input to the full photo.

    Returns:
        (float32 tensor shaped (C, H, W) or (H, W, C) as the model's layout wants, Geometry).
    """
    width, height = input_size(spec, preset)
    image, original = resized_photo(rgb, spec, preset, size)
    resized = image.size
    # torchvision's CenterCrop offsets; negative for a letterbox, whose crop box pads with black.
    crop = (int(round((resized[0] - width) / 2.0)), int(round((resized[1] - height) / 2.0)))
    pixels = np.asarray(image.crop((crop[0], crop[1], crop[0] + width, crop[1] + height)), dtype=np.float32)
    geometry = Geometry(original=original, resized=resized, crop=crop, input=(width, height))
    return to_tensor(pixels, spec, preset), geometry


def resized_photo(
    rgb: np.ndarray, spec: ImageInput, preset: Preset, size: tuple[int, int] | None = None, at_least: float = 1.0
) -> tuple[Image.Image, tuple[int, int]]:
    """The photo resized as the preset says, before its crop.

    Args:
        rgb, spec, preset, size: as in ``preprocess``.
        at_least: each side is at least this many times the input's (an ``exact`` resize grows
            to it; multi-crop's corners need the margin).

    Returns:
        (the resized photo, the photo's own (width, height)).

    Raises:
        ImageError: the aspect ratio is so extreme that the resized photo would be huge.
    """
    width, height = input_size(spec, preset)
    photo = Image.fromarray(rgb)
    original = size or photo.size
    if preset.resize == "short":
        resized = _short_side_size(original, round(min(width, height) * preset.resize_ratio), (width, height))
    elif preset.resize == "letterbox":
        resized = _fit_inside(original, (width, height))
    else:
        resized = (width, height)
    if preset.resize != "letterbox":
        resized = (max(resized[0], round(width * at_least)), max(resized[1], round(height * at_least)))
    image = photo.resize(resized, Image.Resampling.BILINEAR) if resized != photo.size else photo
    return image, original


def to_tensor(pixels: np.ndarray, spec: ImageInput, preset: Preset) -> np.ndarray:
    """A float32 (height, width, 3) crop of RGB pixels as the model's input sample: grey or
    BGR as it takes them, scaled and normalised, in its layout."""
    if spec.channels == 1:
        pixels = (pixels @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[:, :, None]
        mean, std = np.asarray(preset.mean[0], np.float32), np.asarray(preset.std[0], np.float32)
    else:
        if preset.bgr:
            pixels = pixels[:, :, ::-1]
        mean, std = np.asarray(preset.mean, np.float32), np.asarray(preset.std, np.float32)
    tensor = (pixels * np.float32(preset.scale) - mean) / std
    if spec.layout == "NCHW":
        tensor = tensor.transpose(2, 0, 1)
    return np.ascontiguousarray(tensor, dtype=np.float32)


#: Refuse photos whose resized copy would exceed this many times the model input's area.
MAX_RESIZED_AREA_RATIO = 64


def _fit_inside(size: tuple[int, int], box: tuple[int, int]) -> tuple[int, int]:
    """The largest size of ``size``'s aspect ratio inside ``box`` (one side equal to the box's)."""
    scale = min(box[0] / size[0], box[1] / size[1])
    return (max(1, min(box[0], round(size[0] * scale))), max(1, min(box[1], round(size[1] * scale))))


def _short_side_size(size: tuple[int, int], short: int, crop: tuple[int, int]) -> tuple[int, int]:
    """torchvision's Resize(int): the short side becomes ``short``, the long side int(short * long / short_old).

    Raises:
        ImageError: the aspect ratio is so extreme that the resized photo would be huge.
    """
    w, h = size
    if w <= h:
        new = (short, int(short * h / w))
    else:
        new = (int(short * w / h), short)
    new = (max(new[0], crop[0]), max(new[1], crop[1]))
    if new[0] * new[1] > MAX_RESIZED_AREA_RATIO * crop[0] * crop[1]:
        raise ImageError(f"the photo's aspect ratio ({w}x{h}) is too extreme to resize and centre-crop to {crop[0]}x{crop[1]}")
    return new
