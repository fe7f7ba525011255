"""Methods side by side: the photo, then each method's overlay, titled with the method, the class
and its probability."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from fixtrace.explanation import Explanation

#: Height of each picture in the grid, pixels.
TILE_HEIGHT = 224
#: Pictures per row; more wrap onto the next row.
COLUMNS = 6
_TITLE = 34
_GAP = 6


def comparison_grid(photo: np.ndarray, explanations: Sequence[Explanation], tile_height: int = TILE_HEIGHT) -> Image.Image:
    """The photo, then each explanation's overlay (heat map and box; no legend: the titles say
    the method, class and probability), ``COLUMNS`` to a row.

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
    tiles += [(e.method, f"{e.target.name[:24]} {e.target.probability:.1%}", e.overlay(legend=False)) for e in explanations]
    columns = min(len(tiles), COLUMNS)
    rows = -(-len(tiles) // columns)
    cell_height = tile_height + _TITLE + _GAP
    grid = Image.new("RGB", (columns * (tile_width + _GAP) + _GAP, rows * cell_height), "white")
    draw = ImageDraw.Draw(grid)
    font = ImageFont.load_default()
    for k, (title, subtitle, picture) in enumerate(tiles):
        x, y = _GAP + (k % columns) * (tile_width + _GAP), (k // columns) * cell_height
        draw.text((x, y + 2), title[:40], fill="black", font=font)
        draw.text((x, y + 2 + _TITLE // 2), subtitle, fill="black", font=font)
        grid.paste(picture.convert("RGB").resize((tile_width, tile_height), Image.Resampling.BILINEAR), (x, y + _TITLE))
    return grid
