"""Colour maps and the heat-map-on-photo overlay."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from fixtrace.render.resample import BAND, bilinear, pixel_centres


def jet(values: np.ndarray) -> np.ndarray:
    """The classic 'jet' colour map (dark blue -> cyan -> yellow -> dark red).

    Args:
        values: array in [0, 1].

    Returns:
        uint8 array of shape values.shape + (3,).
    """
    v = np.clip(values, 0.0, 1.0).astype(np.float32)[..., None]
    centres = np.array([0.75, 0.5, 0.25], dtype=np.float32)  # where red, green, blue peak
    rgb = np.clip(1.5 - np.abs(4.0 * (v - centres)), 0.0, 1.0)
    return (rgb * 255.0 + 0.5).astype(np.uint8)


def overlay(
    photo: np.ndarray,
    heat: np.ndarray,
    box: tuple[int, int, int, int] | None = None,
    points: np.ndarray | None = None,
    strength: float = 0.6,
) -> Image.Image:
    """Blend the coloured heat map onto the photo, more where the heat is higher.

    The blend is computed band by band of rows. When ``photo`` is a reduced copy of the photo the
    heat map covers (``Photo``), the heat map is sampled at its pixels and the box and points
    are scaled to it.

    Args:
        photo: uint8 (h, w, 3).
        heat: (H, W) in [0, 1], on the full photo.
        box: optional (x0, y0, x1, y1) on the full photo, drawn in green.
        points: optional (n, 2) (x, y) on the full photo, drawn as small dots.
        strength: colour opacity at heat 1.

    Returns:
        RGB PIL image of ``photo``'s size.
    """
    h, w = photo.shape[:2]
    same = heat.shape == (h, w)
    rows, cols = (None, None) if same else (pixel_centres(h, heat.shape[0]), pixel_centres(w, heat.shape[1]))
    blended = np.empty((h, w, 3), dtype=np.uint8)
    for start in range(0, h, BAND):
        band = slice(start, start + BAND)
        values = heat[band] if rows is None or cols is None else bilinear(heat, rows[band], cols)
        values = np.clip(values, 0.0, 1.0)
        alpha = (strength * np.sqrt(values))[..., None]
        mixed = photo[band].astype(np.float32) * (1.0 - alpha) + jet(values).astype(np.float32) * alpha
        blended[band] = np.clip(mixed + 0.5, 0, 255)
    image = Image.fromarray(blended)
    del blended
    sx, sy = w / heat.shape[1], h / heat.shape[0]
    draw = ImageDraw.Draw(image)
    line = max(2, round(min(image.size) / 150))
    if points is not None:
        r = max(1, line // 2)
        for x, y in np.asarray(points):
            x, y = (x + 0.5) * sx - 0.5, (y + 0.5) * sy - 0.5
            draw.ellipse((x - r, y - r, x + r, y + r), fill=(255, 255, 255))
    if box is not None:
        draw.rectangle((box[0] * sx, box[1] * sy, box[2] * sx - 1, box[3] * sy - 1), outline=(0, 255, 0), width=line)
    return image
