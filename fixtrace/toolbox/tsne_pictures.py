"""Pictures of a t-SNE embedding: the CS231n picture (each photo's thumbnail at its place, snapped
to a grid so none overlap) and a scatter of the points coloured by predicted class."""

from __future__ import annotations

import colorsys
import math
from collections import Counter

import numpy as np
from PIL import Image, ImageDraw, ImageOps
from scipy.optimize import linear_sum_assignment

from fixtrace import validate
from fixtrace.errors import FixtraceError
from fixtrace.images.load import load_photo
from fixtrace.render.legend import text_font
from fixtrace.toolbox.options import DEFAULT_MAX_SIDE, DEFAULT_THUMB, MAX_SIDE
from fixtrace.toolbox.tsne import TsneResult

#: Candidates per cell the assignment weighs at most: beyond, an evenly spaced sample of the
#: photos (in stream order) is matched, which bounds the cost matrix on large folders.
CANDIDATES_PER_CELL = 8
#: White pixels between two thumbnails (and around the grid).
GUTTER = 2
#: Classes named in the scatter's legend (the most frequent); the others are drawn grey.
LEGEND_CLASSES = 20
#: Tableau's 10 categorical colours; more classes get evenly spread hues.
_PALETTE = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
)
_OTHER = (190, 190, 190)


def default_side(count: int) -> int:
    """Cells a side of the default grid for ``count`` photos."""
    return max(1, min(DEFAULT_MAX_SIDE, math.ceil(math.sqrt(count))))


def grid_cells(coords: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
    """Snap 2-D points to a ``side`` x ``side`` grid, at most one point a cell.

    The points are scaled to the unit square (each axis on its own) and matched to the cell
    centres by a minimum-cost assignment of squared distances (``scipy.optimize.
    linear_sum_assignment``): with at least as many cells as points every point gets a cell and
    the layout moves the points as little as it can in total; with fewer cells, each cell takes a
    different point and the points left over are not shown (with more than
    ``CANDIDATES_PER_CELL`` points a cell, among an evenly spaced sample of them).

    Args:
        coords: (N, 2) positions.
        side: cells a side.

    Returns:
        (the points shown, their cells as flat indices row * side + column), both int64.
    """
    side = validate.integer("grid", side, 1, MAX_SIDE, flag="--grid")
    points = np.asarray(coords, dtype=np.float64)
    low, high = points.min(axis=0), points.max(axis=0)
    unit = (points - low) / np.where(high > low, high - low, 1.0)
    candidates = np.arange(len(unit))
    if len(unit) > CANDIDATES_PER_CELL * side * side:
        candidates = np.unique(np.linspace(0, len(unit) - 1, CANDIDATES_PER_CELL * side * side).astype(np.int64))
    rows, columns = np.divmod(np.arange(side * side), side)
    centres = (np.stack([columns, rows], axis=1) + 0.5) / side
    cost = ((centres[:, None, :] - unit[None, candidates, :]) ** 2).sum(axis=2)
    cells, chosen = linear_sum_assignment(cost)
    shown = candidates[chosen]
    order = np.argsort(shown)
    return shown[order].astype(np.int64), cells[order].astype(np.int64)


def grid_picture(
    result: TsneResult, side: int | None = None, thumb: int = DEFAULT_THUMB
) -> tuple[Image.Image, np.ndarray, np.ndarray]:
    """The CS231n picture: each shown photo's thumbnail (centre square) in its grid cell, the
    cells ``GUTTER`` white pixels apart.

    The photos are read again from their sources, only the ones shown; one that cannot be read
    any more leaves its cell grey.

    Args:
        result: the embedding.
        side: cells a side (default: ``default_side``).
        thumb: thumbnail side in pixels.

    Returns:
        The RGB picture, the photos shown and their cells (see ``grid_cells``).
    """
    side = default_side(len(result)) if side is None else side
    thumb = validate.integer("thumb", thumb, 8, 512, flag="--thumb")
    shown, cells = grid_cells(result.coords, side)
    step = thumb + GUTTER
    picture = Image.new("RGB", (side * step + GUTTER, side * step + GUTTER), "white")
    for k, cell in zip(shown.tolist(), cells.tolist()):
        row, column = divmod(cell, side)
        try:
            photo = Image.fromarray(load_photo(result.codes.sources[k]).pixels)
            tile = ImageOps.fit(photo, (thumb, thumb), Image.Resampling.BILINEAR)
        except FixtraceError:
            tile = Image.new("RGB", (thumb, thumb), _OTHER)
        picture.paste(tile, (GUTTER + column * step, GUTTER + row * step))
    return picture, shown, cells


def class_colours(count: int) -> list[tuple[int, int, int]]:
    """``count`` distinct colours: Tableau's 10, then evenly spread hues."""
    if count <= len(_PALETTE):
        return list(_PALETTE[:count])
    hues = ((k * 0.618033988749895) % 1.0 for k in range(count))
    return [tuple(round(255 * c) for c in colorsys.hsv_to_rgb(h, 0.75, 0.85)) for h in hues]  # type: ignore[misc]


def scatter_picture(result: TsneResult, size: int = 800) -> Image.Image:
    """The points coloured by predicted class, with a legend of the ``LEGEND_CLASSES`` most
    frequent classes (name and count; the rest grey).

    Args:
        result: the embedding.
        size: the plot's side in pixels (the legend is drawn to its right).

    Returns:
        The RGB picture.
    """
    size = validate.integer("size", size, 64, 8192)
    codes = result.codes
    counts = Counter(codes.predicted.tolist()).most_common()
    palette = dict(zip([k for k, _ in counts[:LEGEND_CLASSES]], class_colours(min(len(counts), LEGEND_CLASSES))))
    entries = [(palette[k], f"{codes.class_names[k][:32]} ({n})") for k, n in counts[:LEGEND_CLASSES]]
    rest = counts[LEGEND_CLASSES:]
    if rest:
        entries.append((_OTHER, f"{len(rest)} other classes ({sum(n for _, n in rest)})"))
    font = text_font(max(10, size // 60))
    line = round(font.getbbox("Ag")[3] * 1.5)
    pad = max(8, size // 50)
    top = pad + line
    width = size + 3 * pad + line + max(round(font.getlength(text)) for _, text in entries)
    picture = Image.new("RGB", (width, top + max(size, len(entries) * line) + pad), "white")
    draw = ImageDraw.Draw(picture)
    title = f"t-SNE of {len(result)} codes ({codes.layer.name[-48:]}), perplexity {result.perplexity:.3g}, seed {result.seed}"
    draw.text((pad, pad // 2), title, fill="black", font=font)
    draw.rectangle((pad, top, pad + size, top + size), outline=(210, 210, 210))
    points = np.asarray(result.coords, dtype=np.float64)
    low, high = points.min(axis=0), points.max(axis=0)
    radius = 4 if len(points) <= 500 else 3 if len(points) <= 3000 else 2
    inset = 2 * radius + 2  # no point touches the frame
    xy = np.array([pad, top]) + inset + (points - low) / np.where(high > low, high - low, 1.0) * (size - 2 * inset)
    for i in sorted(range(len(points)), key=lambda i: int(codes.predicted[i]) in palette):  # grey ones underneath
        x, y = xy[i]
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=palette.get(int(codes.predicted[i]), _OTHER))
    x = size + 2 * pad
    for row, (colour, text) in enumerate(entries):
        y = top + row * line
        draw.rectangle((x, y + line // 5, x + line * 3 // 5, y + line * 4 // 5), fill=colour)
        draw.text((x + line, y + line // 6), text, fill="black", font=font)
    return picture
