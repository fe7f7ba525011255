"""Methods side by side: the photo, then each method's overlay, titled with the method, the class
and its probability."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from fixtrace.explanation import Explanation

#: Height of each picture in the grid, pixels.
TILE_HEIGHT = 224
_TITLE = 34
_GAP = 6


def comparison_grid(photo: np.ndarray, explanations: Sequence[Explanation], tile_height: int = TILE_HEIGHT) -> Image.Image:
    """One row: the photo, then each explanation's overlay (heat map and box).

    Args:
        photo: the photo, uint8 (h, w, 3) (``Explanation.image``).
        explanations: one per method, in the order to show.
        tile_height: height of each picture.

    Returns:
        An RGB image.
    """
    h, w = photo.shape[:2]
    tile_width = max(1, round(w * tile_height / h))
    tiles = [("photo", f"{w}x{h}", Image.fromarray(photo))]
    tiles += [(e.method, f"{e.target.name[:24]} {e.target.probability:.1%}", e.overlay()) for e in explanations]
    grid = Image.new("RGB", (len(tiles) * (tile_width + _GAP) + _GAP, tile_height + _TITLE + _GAP), "white")
    draw = ImageDraw.Draw(grid)
    font = ImageFont.load_default()
    for k, (title, subtitle, picture) in enumerate(tiles):
        x = _GAP + k * (tile_width + _GAP)
        draw.text((x, 2), title[:40], fill="black", font=font)
        draw.text((x, 2 + _TITLE // 2), subtitle, fill="black", font=font)
        grid.paste(picture.convert("RGB").resize((tile_width, tile_height), Image.Resampling.BILINEAR), (x, _TITLE))
    return grid
