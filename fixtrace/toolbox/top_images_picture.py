"""The picture of maximally activating images: a row per channel (or class) holding its winners
best first, each tile labelled with the photo's name and score, the rows labelled with the unit."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw

from fixtrace.render.legend import text_font

if TYPE_CHECKING:
    from fixtrace.toolbox.top_images import TopImages

#: Side of a tile, pixels: each patch is scaled to fit inside it, aspect kept.
TILE = 112
_GAP = 4
_FONT = 11
_LINE = _FONT + 3
_ROW_LABEL = 96
_PAPER, _INK, _MAT = (255, 255, 255), (0, 0, 0), (224, 224, 224)


def draw(result: TopImages, tile: int = TILE) -> Image.Image:
    """A units x k grid of the winners' patches (one row, a strip, for one unit).

    Args:
        result: the winners.
        tile: side of each tile in pixels.

    Returns:
        An RGB image.
    """
    font = text_font(_FONT)
    columns = max([len(found) for found in result.winners.values()] + [1])
    caption = _caption(result)
    top = _GAP + len(caption) * _LINE + _GAP
    cell_w, cell_h = tile + _GAP, tile + 2 * _LINE + _GAP
    width = max(_ROW_LABEL + columns * cell_w + _GAP, 2 * _GAP + max(int(font.getlength(line)) for line in caption))
    picture = Image.new("RGB", (width, top + len(result.winners) * cell_h), _PAPER)
    ink = ImageDraw.Draw(picture)
    for k, line in enumerate(caption):
        ink.text((_GAP, _GAP + k * _LINE), line, fill=_INK, font=font)
    for r, (unit, found) in enumerate(result.winners.items()):
        y = top + r * cell_h
        words = result.names[unit].split(" ")  # "channel 12", or "class 281 tabby cat" on two lines
        for k, line in enumerate(_fit([" ".join(words[:2]), " ".join(words[2:])], _ROW_LABEL - _GAP, font)):
            ink.text((_GAP, y + tile // 2 - _LINE + k * _LINE), line, fill=_INK, font=font)
        for c, winner in enumerate(found):
            x = _ROW_LABEL + c * cell_w
            picture.paste(_tile(winner.patch, tile), (x, y))
            name, score = _fit([winner.name, f"{winner.score:.4g}"], tile, font)
            ink.text((x, y + tile + 1), name, fill=_INK, font=font)
            ink.text((x, y + tile + 1 + _LINE), score, fill=_INK, font=font)
    return picture


def _caption(result: TopImages) -> list[str]:
    if result.kind == "class":
        return [f"top {result.k} photos per class of {result.seen}, by the class's raw score (logit)"]
    assert result.field is not None
    field = result.field
    seen = "the whole image" if field.whole else f"{field.size[0]}x{field.size[1]} input pixels, stride {field.stride[0]}"
    return [
        f"layer {result.layer}: top {result.k} of {result.seen} photos per channel by the {result.score} of its map",
        f"each patch: what the best cell sees ({seen}), on the photo",
    ]


def _tile(patch: np.ndarray, side: int) -> Image.Image:
    """``patch`` scaled to fit a ``side`` square, centred on a grey mat."""
    h, w = patch.shape[:2]
    scale = side / max(h, w, 1)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    tile = Image.new("RGB", (side, side), _MAT)
    tile.paste(Image.fromarray(patch).resize(size, Image.Resampling.LANCZOS), ((side - size[0]) // 2, (side - size[1]) // 2))
    return tile


def _fit(lines: Sequence[str], room: int, font) -> list[str]:
    """Each line cut short (ending in ``~``) to fit ``room`` pixels."""
    fitted = []
    for line in lines:
        while len(line) > 1 and font.getlength(line) > room:
            line = line[:-2] + "~"
        fitted.append(line)
    return fitted
