"""Small pictures in a labelled grid: the toolbox's channel maps and filter patches. Tiles are
pasted pixel for pixel (labels sit in strips outside them), so a tile's pixels are exactly the
values its caller scaled, and ``TileGrid.boxes`` says where each one landed."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from fixtrace.render.legend import text_font

#: Pixels between tiles and around the grid.
GAP = 3
#: Font size of labels and captions, pixels.
FONT_SIZE = 10
#: Height of a label strip or caption line.
LINE = FONT_SIZE + 4
#: The grid's least width, so that the caption reads.
MIN_WIDTH = 420
_BACKGROUND = (255, 255, 255)
_INK = (0, 0, 0)


@dataclass(frozen=True)
class TileGrid:
    """A grid picture and where its tiles are.

    Attributes:
        image: the RGB picture.
        boxes: (x0, y0, x1, y1) of each tile, in the order the tiles were given (x1, y1 exclusive).
    """

    image: Image.Image
    boxes: list[tuple[int, int, int, int]]


def scaled_between(values: np.ndarray, low: np.ndarray | float, high: np.ndarray | float) -> np.ndarray:
    """``values`` mapped to [0, 1]: ``low`` to 0 and ``high`` to 1, clipped (0 where high == low)."""
    values = np.asarray(values, dtype=np.float64)
    span = np.asarray(high, dtype=np.float64) - np.asarray(low, dtype=np.float64)
    out = np.divide(values - low, span, out=np.zeros(np.broadcast(values, span).shape), where=span > 0)
    return np.clip(out, 0.0, 1.0)


def magnify(tile: np.ndarray, factor: int) -> np.ndarray:
    """``tile`` (h, w[, c]) enlarged ``factor`` times with nearest neighbour (each value a block)."""
    return np.repeat(np.repeat(tile, factor, axis=0), factor, axis=1)


def zoom_for(height: int, width: int, target: int) -> int:
    """The whole factor that brings a tile's long side nearest ``target`` pixels (at least 1)."""
    return max(1, round(target / max(height, width, 1)))


def tile_grid(
    tiles: Sequence[np.ndarray],
    columns: int | None = None,
    *,
    labels: Sequence[str] | None = None,
    row_labels: Sequence[str] | None = None,
    column_labels: Sequence[str] | None = None,
    caption: Sequence[str] = (),
) -> TileGrid:
    """Lay tiles out row by row.

    Args:
        tiles: uint8 (h, w, 3) arrays of one shape.
        columns: tiles per row (default: about a square).
        labels: one text per tile, drawn in a strip above it.
        row_labels, column_labels: texts left of each row and above each column (a matrix of tiles).
        caption: lines of text above the grid (cut short from the left when too long).

    Returns:
        The picture and the tiles' boxes.
    """
    count = len(tiles)
    height, width = tiles[0].shape[:2] if count else (1, 1)
    columns = max(1, min(columns or math.ceil(math.sqrt(count)), max(count, 1)))
    rows = max(1, math.ceil(count / columns))
    font = text_font(FONT_SIZE)
    left = GAP + (max(round(font.getlength(t)) for t in row_labels) + GAP if row_labels else 0)
    top = GAP + LINE * len(caption) + (LINE if column_labels else 0)
    strip = LINE if labels else 0
    cell_w, cell_h = width + GAP, height + strip + GAP
    canvas = Image.new("RGB", (max(MIN_WIDTH, left + columns * cell_w), top + rows * cell_h), _BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for k, line in enumerate(caption):
        draw.text((GAP, GAP + k * LINE), _fit_left(line, canvas.width - 2 * GAP), fill=_INK, font=font)
    for k, text in enumerate(column_labels or ()):
        draw.text((left + k * cell_w, top - LINE), _fit_left(text, cell_w), fill=_INK, font=font)
    for k, text in enumerate(row_labels or ()):
        draw.text((GAP, top + k * cell_h + strip + (height - FONT_SIZE) // 2), text, fill=_INK, font=font)
    boxes = []
    for k, tile in enumerate(tiles):
        x, y = left + (k % columns) * cell_w, top + (k // columns) * cell_h
        if labels:
            draw.text((x, y), _fit_left(labels[k], cell_w), fill=_INK, font=font)
        canvas.paste(Image.fromarray(np.ascontiguousarray(tile)), (x, y + strip))
        boxes.append((x, y + strip, x + width, y + strip + height))
    return TileGrid(canvas, boxes)


def _fit_left(text: str, room: float) -> str:
    """``text``, its start cut to ``...`` to fit ``room`` pixels (a layer name's end tells most)."""
    font = text_font(FONT_SIZE)
    if font.getlength(text) <= room:
        return text
    low, high = 0, len(text)
    while low < high:  # the shortest cut that fits
        middle = (low + high) // 2
        if font.getlength("..." + text[middle:]) <= room:
            high = middle
        else:
            low = middle + 1
    return "..." + text[low:]
