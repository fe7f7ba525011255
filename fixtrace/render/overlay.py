"""The heat-map-on-photo overlay: colour map, percentile white point, the region the model did not
see, points, box and legend."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw

from fixtrace.render.colormaps import DIVERGING, colours, jet
from fixtrace.render.legend import Legend, draw_legend
from fixtrace.render.resample import BAND, bilinear, pixel_centres

__all__ = ["FADE", "LEVELS", "jet", "overlay"]

#: Heat levels of the blend tables (the heat is rounded to 1/1023).
LEVELS = 1024
_FRACTION = 7  # fixed-point bits of the blend weights (at 8 a bright pixel can overflow uint16)
#: Width, as a fraction of the picture's short side, over which a map fades out beyond the
#: region the model saw (a centre crop's edges) instead of stopping at a hard line.
FADE = 0.05
#: How much of its colour the photo keeps outside the region the model saw, out of 256.
_COLOUR_OUTSIDE = 64


@functools.lru_cache(maxsize=16)
def _blend_tables(strength: float, colormap: str = "jet", signed: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Per heat level, the photo's weight (1 - alpha) and the premultiplied colour alpha * colour,
    in fixed point, with alpha = strength * sqrt(|heat|); uint16, so a pixel blends in integers.
    Levels run over [0, 1], or over [-1, 1] for a signed map (coloured by the diverging map)."""
    levels = np.linspace(0.0, 1.0, LEVELS, dtype=np.float32)
    value = 2.0 * levels - 1.0 if signed else levels
    alpha = strength * np.sqrt(np.abs(value))
    scale = float(1 << _FRACTION)
    keep = np.round((1.0 - alpha) * scale).astype(np.uint16)
    rgb = jet(levels) if colormap == "jet" and not signed else colours(DIVERGING if signed else colormap, levels)
    colour = np.round(rgb.astype(np.float32) * alpha[:, None] * scale).astype(np.uint16)
    return keep, colour


def overlay(
    photo: np.ndarray,
    heat: np.ndarray,
    box: tuple[int, int, int, int] | None = None,
    points: np.ndarray | None = None,
    strength: float = 0.6,
    *,
    outliers: np.ndarray | None = None,
    colormap: str = "jet",
    gain: float = 1.0,
    signed: bool = False,
    view: tuple[float, float, float, float] | None = None,
    legend: Legend | None = None,
) -> Image.Image:
    """Blend the coloured heat map onto the photo, more where the heat is higher.

    The blend is computed band by band of rows, in fixed point from tables per heat level (2.4x
    faster than in floats; each channel within 6 of 255 of the exact blend). When ``photo`` is a
    reduced copy of the photo the heat map covers (``Photo``), the heat map is sampled at its
    pixels and the box, points and view are scaled to it.

    Outside ``view`` (the part of the photo the model never saw, beyond a centre crop) the photo
    is shown nearly grey (its luminance kept), and the map fades out over ``FADE`` of the short
    side from its value on the view's edge, so no hard rectangle marks where the crop ends.

    Args:
        photo: uint8 (h, w, 3).
        heat: (H, W) in [0, 1] (``signed``: in [-1, 1]), on the full photo.
        box: optional (x0, y0, x1, y1) on the full photo, drawn in green.
        points: optional (n, 2) (x, y) on the full photo, drawn as white dots.
        strength: colour opacity at heat 1.
        outliers: optional (n, 2) points drawn as hollow red rings (those outlier removal dropped).
        colormap: a name of ``colormaps.COLORMAPS`` (ignored when ``signed``).
        gain: the heat is multiplied by this before colouring (1 / the white point), then clipped.
        signed: the heat is signed: negatives blue, positives red (the diverging map).
        view: (x0, y0, x1, y1) of what the model saw, in full-photo pixels (None: all of it).
        legend: what the legend says (None: no legend).

    Returns:
        RGB PIL image of ``photo``'s size.
    """
    from fixtrace.kernels.cpu.blend import blend_levels  # numba: not for the CLI's parser

    h, w = photo.shape[:2]
    same = heat.shape == (h, w)
    rows, cols = (None, None) if same else (pixel_centres(h, heat.shape[0]), pixel_centres(w, heat.shape[1]))

    def sample(band: slice) -> np.ndarray:
        return heat[band] if rows is None or cols is None else bilinear(heat, rows[band], cols)

    def column(x: int) -> np.ndarray:
        return heat[:, x] if rows is None or cols is None else bilinear(heat, rows, cols[x : x + 1])[:, 0]

    keep, colour = _blend_tables(strength, colormap, signed)
    sx, sy = w / heat.shape[1], h / heat.shape[0]
    window = _window(view, sx, sy, w, h)
    fade = _Fade(window, w, h, sample, column) if window is not None else None
    scale = np.float32(gain * (LEVELS - 1) / (2.0 if signed else 1.0))
    offset = np.float32((LEVELS - 1) / 2.0 + 0.5 if signed else 0.5)
    blended = np.empty((h, w, 3), dtype=np.uint8)
    for start in range(0, h, BAND):
        band = slice(start, start + BAND)
        if fade is not None:
            values = fade.apply(np.array(sample(band), dtype=np.float32), start)
        else:  # a float64 map stays float64, as numpy scaled it
            values = np.ascontiguousarray(sample(band), dtype=np.result_type(heat.dtype, np.float32))
        base = photo[band]
        if window is not None:
            base = np.array(base, dtype=np.uint8)
            _grey_outside(base, photo[band], start, window)
        blend_levels(values, np.ascontiguousarray(base, dtype=np.uint8), keep, colour, scale, offset, _FRACTION, blended[band])
    image = Image.fromarray(blended)
    del blended
    draw = ImageDraw.Draw(image)
    line = max(2, round(min(image.size) / 150))
    r = max(2, line)
    for dots, filled in ((points, True), (outliers, False)):
        for x, y in np.asarray(dots) if dots is not None else ():
            x, y = (x + 0.5) * sx - 0.5, (y + 0.5) * sy - 0.5
            if filled:
                draw.ellipse((x - r, y - r, x + r, y + r), fill=(255, 255, 255), outline=(0, 0, 0))
            else:
                draw.ellipse((x - r, y - r, x + r, y + r), outline=(255, 40, 40), width=max(1, r // 2))
    if box is not None:
        draw.rectangle((box[0] * sx, box[1] * sy, box[2] * sx - 1, box[3] * sy - 1), outline=(0, 255, 0), width=line)
    if legend is not None:
        draw_legend(image, legend)
    return image


def _window(
    view: tuple[float, float, float, float] | None, sx: float, sy: float, w: int, h: int
) -> tuple[int, int, int, int] | None:
    """The picture's pixels inside ``view`` as (left, top, right, bottom), right and bottom
    exclusive; None when that is all of them (or nothing: no view to mark)."""
    if view is None:
        return None
    x0, y0, x1, y1 = view[0] * sx, view[1] * sy, view[2] * sx, view[3] * sy
    # A pixel is inside when its centre is: x0 <= x + 0.5 <= x1.
    left, top = max(0, math.ceil(x0 - 0.5)), max(0, math.ceil(y0 - 0.5))
    right, bottom = min(w, math.floor(x1 - 0.5) + 1), min(h, math.floor(y1 - 0.5) + 1)
    if (left, top, right, bottom) == (0, 0, w, h) or left >= right or top >= bottom:
        return None
    return left, top, right, bottom


class _Fade:
    """The map carried beyond the view's edges, fading linearly to 0 over ``FADE`` of the short
    side. What is carried is the map's value along the edge, smoothed along it over the fade's
    width (a speckled gradient map would otherwise leave streaks). A pixel outside takes the larger
    (in magnitude) of its own value and the carried one, so a map that already spreads there
    (fixations' blur) keeps its own values."""

    def __init__(
        self,
        window: tuple[int, int, int, int],
        w: int,
        h: int,
        sample: Callable[[slice], np.ndarray],
        column: Callable[[int], np.ndarray],
    ) -> None:
        self.left, self.top, self.right, self.bottom = window
        self.w, self.h = w, h
        self.width = max(2, round(FADE * min(w, h)))
        self.ramp = (1.0 - np.arange(1, self.width + 1, dtype=np.float32) / (self.width + 1)).astype(np.float32)
        inside = slice(self.top, self.bottom)
        self.columns: dict[str, np.ndarray] = {}
        for side, x in (("left", self.left), ("right", self.right - 1)):
            self.columns[side] = np.zeros(h, dtype=np.float32)
            self.columns[side][inside] = _smooth(column(x)[inside], self.width)
        self.top_row = self._columns(
            _smooth_row(sample(slice(self.top, self.top + 1)), self.left, self.right, self.width), self.top, self.top + 1
        )
        self.bottom_row = self._columns(
            _smooth_row(sample(slice(self.bottom - 1, self.bottom)), self.left, self.right, self.width),
            self.bottom - 1,
            self.bottom,
        )

    def _columns(self, values: np.ndarray, start: int, end: int) -> np.ndarray:
        """The fade across the left and right edges on rows ``start:end``, in place."""
        n = min(self.width, self.left)
        if n:  # columns left - 1, ..., left - n
            carried = self.columns["left"][start:end, None] * self.ramp[:n][::-1]
            _stronger(values[:, self.left - n : self.left], carried)
        n = min(self.width, self.w - self.right)
        if n:
            _stronger(values[:, self.right : self.right + n], self.columns["right"][start:end, None] * self.ramp[:n])
        return values

    def apply(self, values: np.ndarray, start: int) -> np.ndarray:
        """The fade on a band of rows starting at picture row ``start``, in place."""
        end = start + len(values)
        self._columns(values, start, end)
        first, last = max(start, self.top - self.width), min(end, self.top)
        if first < last:  # rows above the view: distance top - r
            ramp = self.ramp[self.top - np.arange(first, last) - 1]
            _stronger(values[first - start : last - start], self.top_row * ramp[:, None])
        first, last = max(start, self.bottom), min(end, self.bottom + self.width)
        if first < last:
            ramp = self.ramp[np.arange(first, last) - self.bottom]
            _stronger(values[first - start : last - start], self.bottom_row * ramp[:, None])
        return values


def _smooth(values: np.ndarray, width: int) -> np.ndarray:
    """A box filter of ``width`` along a line, the ends averaged over what there is (float32)."""
    if width < 2 or len(values) < 2:
        return np.asarray(values, dtype=np.float32)
    sums = np.concatenate([[0.0], np.cumsum(values, dtype=np.float64)])
    index = np.arange(len(values))
    low, high = np.maximum(index - width // 2, 0), np.minimum(index + (width + 1) // 2, len(values))
    return ((sums[high] - sums[low]) / (high - low)).astype(np.float32)


def _smooth_row(row: np.ndarray, left: int, right: int, width: int) -> np.ndarray:
    """A row of the map (1, w), its part inside ``left:right`` smoothed, the rest zero (float32)."""
    out = np.zeros(row.shape, dtype=np.float32)
    out[0, left:right] = _smooth(row[0, left:right], width)
    return out


def _stronger(values: np.ndarray, candidate: np.ndarray) -> None:
    """``values`` replaced, in place, where ``candidate`` is larger in magnitude."""
    np.copyto(values, candidate, where=np.abs(candidate) > np.abs(values))


def _grey_outside(mixed: np.ndarray, photo: np.ndarray, start: int, window: tuple[int, int, int, int]) -> None:
    """The band's photo pixels outside the window, nearly grey (luminance kept), into ``mixed``."""
    left, top, right, bottom = window
    end = start + len(mixed)
    first, last = max(start, top), min(end, bottom)
    inside = slice(first - start, max(first, last) - start)  # rows inside: the side columns; else whole rows
    above, below = slice(0, max(0, min(end, top) - start)), slice(max(0, bottom - start), len(mixed))
    for rows, cols in ((inside, slice(0, left)), (inside, slice(right, None)), (above, slice(None)), (below, slice(None))):
        block = photo[rows, cols]
        if block.size:  # in C through PIL: 3x faster than the same in numpy
            image = Image.fromarray(np.ascontiguousarray(block))
            mixed[rows, cols] = np.asarray(Image.blend(image.convert("L").convert("RGB"), image, _COLOUR_OUTSIDE / 256))
