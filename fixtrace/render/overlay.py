"""Colour maps and the heat-map-on-photo overlay."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw


def jet(values: np.ndarray) -> np.ndarray:
    """The classic 'jet' colour map (dark blue -> cyan -> yellow -> dark red).

    Args:
        values: array in [0, 1].

    Returns:
        uint8 array of shape values.shape + (3,).
    """
    v = np.clip(values, 0.0, 1.0)[..., None]
    centres = np.array([0.75, 0.5, 0.25])  # where red, green, blue peak
    rgb = np.clip(1.5 - np.abs(4.0 * (v - centres)), 0.0, 1.0)
    return (rgb * 255.0 + 0.5).astype(np.uint8)


def overlay(photo: np.ndarray, heat: np.ndarray, box: tuple[int, int, int, int] | None = None,
            points: np.ndarray | None = None, strength: float = 0.6) -> Image.Image:
    """Blend the coloured heat map onto the photo, more where the heat is higher.

    Args:
        photo: uint8 (H, W, 3).
        heat: (H, W) in [0, 1].
        box: optional (x0, y0, x1, y1) drawn in green.
        points: optional (n, 2) (x, y) drawn as small dots.
        strength: colour opacity at heat 1.

    Returns:
        RGB PIL image of the photo's size.
    """
    alpha = (strength * np.sqrt(np.clip(heat, 0.0, 1.0)))[..., None]
    blended = photo.astype(np.float32) * (1.0 - alpha) + jet(heat).astype(np.float32) * alpha
    image = Image.fromarray(np.clip(blended + 0.5, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    line = max(2, round(min(image.size) / 150))
    if points is not None:
        r = max(1, line // 2)
        for x, y in np.asarray(points):
            draw.ellipse((x - r, y - r, x + r, y + r), fill=(255, 255, 255))
    if box is not None:
        draw.rectangle((box[0], box[1], box[2] - 1, box[3] - 1), outline=(0, 255, 0), width=line)
    return image
