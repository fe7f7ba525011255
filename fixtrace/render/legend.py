"""The legend of an overlay: a dark box in the bottom-left corner holding the colour bar with its
ends labelled, then the class, its probability and the method. Drawn inside the picture, so the
overlay keeps the photo's size and stays pixel-aligned with it and with ``heatmap.png``; its size
follows the photo's short side, so it reads the same on a thumbnail and on a 100-megapixel photo."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from fixtrace.render.colormaps import DIVERGING, colours

#: Legend height as a fraction of the picture's short side.
HEIGHT = 0.06
#: The smallest legend height in pixels (the text stays about 9 px high).
MIN_HEIGHT = 14
#: Pictures whose short side is below this get no legend (it would hide a third of them).
MIN_SIDE = 48
#: How much of the photo shows through the legend's box, out of 256.
_SHADE = 96

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


@dataclass(frozen=True)
class Legend:
    """What the legend says.

    Attributes:
        text: the class, its probability and the method.
        colormap: the colour bar's map (signed: the diverging map, whatever this says).
        signed: the bar runs from -top through 0 to +top.
        top: the label of the bar's top end (``max``, or ``p99`` when clipped at the 99th percentile).
    """

    text: str
    colormap: str = "jet"
    signed: bool = False
    top: str = "max"


@functools.lru_cache(maxsize=16)
def text_font(size: int) -> Font:
    """Pillow's own font at ``size`` pixels (its bitmap font where FreeType is missing)."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):  # Pillow < 10.1 or without FreeType: a fixed 11 px font
        return ImageFont.load_default()


@functools.lru_cache(maxsize=2048)
def _glyph(size: int, char: str) -> tuple[np.ndarray, int, int, float]:
    """One character rendered once: (coverage mask uint8, x and y offsets from the pen at the
    line's top, advance)."""
    font = text_font(size)
    x0, y0, x1, y1 = (int(v) for v in font.getbbox(char))
    mask = Image.new("L", (max(1, x1 - x0), max(1, y1 - y0)))
    ImageDraw.Draw(mask).text((-x0, -y0), char, fill=255, font=font)
    return np.asarray(mask), x0, y0, float(font.getlength(char))


@functools.lru_cache(maxsize=1024)
def _word(size: int, word: str) -> np.ndarray:
    """A word as a coverage mask (line height, advance width), from cached glyphs (no kerning)."""
    ascent, descent = (int(v) for v in text_font(size).getbbox("Ag")[1::2])
    glyphs = [_glyph(size, c) for c in word]
    width = max(1, round(sum(a for *_, a in glyphs)))
    mask = np.zeros((descent - ascent, width + max([0] + [g.shape[1] for g, *_ in glyphs])), dtype=np.uint8)
    pen = 0.0
    for g, x, y, advance in glyphs:
        left, top = max(0, round(pen) + x), y - ascent
        part = g[max(0, -top) : mask.shape[0] - top, : mask.shape[1] - left]
        target = mask[max(0, top) : max(0, top) + part.shape[0], left : left + part.shape[1]]
        np.maximum(target, part, out=target)
        pen += advance
    mask = np.ascontiguousarray(mask[:, :width])
    mask.setflags(write=False)
    return mask


def _text(size: int, text: str) -> np.ndarray:
    """A line of text as a coverage mask (line height, width): its words (cached: a class name
    or method drawn once serves every picture) joined by spaces. Drawing the line with FreeType
    each time cost 0.7 ms for a class name."""
    space = max(1, round(_glyph(size, " ")[3]))
    words = [_word(size, word) for word in text.split(" ")]
    gap = np.zeros((words[0].shape[0], space), dtype=np.uint8)
    return np.concatenate([part for word in words for part in (gap, word)][1:], axis=1)


@functools.lru_cache(maxsize=16)
def _bar(colormap: str, signed: bool, width: int, height: int) -> np.ndarray:
    """The colour bar, uint8 (height, width, 3)."""
    row = colours(DIVERGING if signed else colormap, np.linspace(0.0, 1.0, width))
    bar = np.repeat(row[None], height, axis=0)
    bar.setflags(write=False)
    return bar


def legend_height(width: int, height: int) -> int:
    """The legend's height on a picture of this size (0: none)."""
    side = min(width, height)
    return 0 if side < MIN_SIDE else max(MIN_HEIGHT, round(HEIGHT * side))


def draw_legend(image: Image.Image, legend: Legend) -> None:
    """Draw the legend in the bottom-left corner of an RGB picture, in place (nothing on pictures
    whose short side is under ``MIN_SIDE``)."""
    w, h = image.size
    size = legend_height(w, h)
    if size == 0:
        return
    font_size = max(8, round(size * 0.62))
    pad = max(2, size // 4)
    low, high = (
        _text(font_size, label) for label in (("-" + legend.top, "+" + legend.top) if legend.signed else ("0", legend.top))
    )
    bar_width, bar_height = 4 * size, max(3, size // 2)
    fixed = pad + low.shape[1] + pad + bar_width + pad + high.shape[1] + pad
    text = _fit(legend.text, font_size, w - 2 * pad - fixed - 2 * pad)
    words = _text(font_size, text) if text else None
    box_width = min(w - 2 * pad, fixed + (pad + words.shape[1] + pad if words is not None else 0))
    x0, y0 = pad, h - pad - size
    shaded = np.asarray(image.crop((x0, y0, x0 + box_width, y0 + size)), dtype=np.uint16) * _SHADE >> 8
    bar_x = pad + low.shape[1] + pad
    if bar_x + bar_width <= box_width:
        top = (size - bar_height) // 2
        shaded[top : top + bar_height, bar_x : bar_x + bar_width] = _bar(legend.colormap, legend.signed, bar_width, bar_height)
    pens = [(pad, low), (bar_x + bar_width + pad, high)]
    if words is not None:
        pens.append((bar_x + bar_width + pad + high.shape[1] + 2 * pad, words))
    for x, mask in pens:
        y = max(0, (size - mask.shape[0]) // 2)
        region = shaded[y : y + mask.shape[0], x : x + mask.shape[1]]
        cover = mask[: region.shape[0], : region.shape[1], None].astype(np.uint16)
        region += ((255 - region) * cover + 127) // 255  # white text, anti-aliased
    image.paste(Image.fromarray(shaded.astype(np.uint8)), (x0, y0))


def _fit(text: str, size: int, room: float) -> str:
    """``text``, cut short with ``...`` to fit ``room`` pixels ("" when not even 4 characters fit)."""
    if _text(size, text).shape[1] <= room:
        return text
    low, high = 0, len(text)
    while low < high:  # the longest prefix that fits with the ellipsis
        middle = (low + high + 1) // 2
        if _width(size, text[:middle] + "...") <= room:
            low = middle
        else:
            high = middle - 1
    return text[:low].rstrip() + "..." if low >= 4 else ""


def _width(size: int, text: str) -> float:
    """The advance width of ``text``."""
    return sum(_glyph(size, c)[3] for c in text)
