"""Preprocessing presets: photo -> model input tensor, plus the Geometry to go back."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from fixtrace.errors import ImageError
from fixtrace.images.geometry import Geometry
from fixtrace.model.layer_graph import ImageInput
from fixtrace.validate import choice


@dataclass(frozen=True)
class Preset:
    """How a model family expects its input.

    Attributes:
        name: preset name.
        resize: ``"short"`` resizes the short side to ``input * resize_ratio`` then centre-crops;
            ``"exact"`` resizes straight to the input size.
        resize_ratio: short side / crop side for ``"short"`` (256 / 224 for ImageNet).
        bgr: feed channels in BGR order.
        scale: multiply 0..255 pixel values by this first.
        mean, std: per-channel (in the fed order), applied after ``scale``: (x - mean) / std.
        default_size: input side used when the model's spatial size is symbolic.
    """

    name: str
    resize: str
    resize_ratio: float
    bgr: bool
    scale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    default_size: int = 224
    description: str = ""


#: name, resize, resize ratio, BGR, scale, mean, std (see Preset).
_PRESET_TABLE = (
    ("imagenet", "short", 256 / 224, False, 1 / 255, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    ("caffe", "short", 256 / 224, True, 1.0, (104.0, 117.0, 123.0), (1.0, 1.0, 1.0)),
    ("tf", "exact", 1.0, False, 1 / 127.5, (1.0, 1.0, 1.0), (1.0, 1.0, 1.0)),
    ("raw", "exact", 1.0, False, 1 / 255, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
)
_DESCRIPTIONS = {
    "imagenet": "torchvision: resize 256, centre crop 224, RGB in [0, 1], ImageNet mean/std",
    "caffe": "Caffe: resize 256, centre crop 224, BGR 0..255 minus the mean pixel",
    "tf": "Keras/TF: resize to the input size, RGB scaled to [-1, 1]",
    "raw": "resize to the input size, RGB in [0, 1], nothing else",
}
PRESETS: dict[str, Preset] = {row[0]: Preset(*row, description=_DESCRIPTIONS[row[0]]) for row in _PRESET_TABLE}


def get_preset(name: str | Preset) -> Preset:
    """Look a preset up by name, in any case (a Preset passes through).

    Raises:
        OptionError: not a preset name (also a ValueError).
    """
    if isinstance(name, Preset):
        return name
    return PRESETS[choice("preprocessing preset", name, PRESETS, "--preset")]


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
    photo = Image.fromarray(rgb)
    original = size or photo.size
    if preset.resize == "short":
        resized = _short_side_size(original, round(min(width, height) * preset.resize_ratio), (width, height))
    else:
        resized = (width, height)
    # torchvision's CenterCrop offsets.
    crop = (int(round((resized[0] - width) / 2.0)), int(round((resized[1] - height) / 2.0)))
    image = photo.resize(resized, Image.Resampling.BILINEAR) if resized != photo.size else photo
    pixels = np.asarray(image.crop((crop[0], crop[1], crop[0] + width, crop[1] + height)), dtype=np.float32)
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
    geometry = Geometry(original=original, resized=resized, crop=crop, input=(width, height))
    return np.ascontiguousarray(tensor, dtype=np.float32), geometry


#: Refuse photos whose resized copy would exceed this many times the model input's area.
MAX_RESIZED_AREA_RATIO = 64


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
