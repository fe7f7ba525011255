"""A layer's activations for a photo: every channel of a feature map as a grey tile, the
channels with the highest mean activation first, with the raw values and per-channel statistics.

Values are onnxruntime's (``LayerReader``), read as (C, H, W) whatever layout the model keeps the
map in. A tile's pixel is ``round(255 (v - low) / (high - low))`` clipped to 0..255, with
``low``/``high`` the whole layer's min and max (``scale="shared"``: tiles compare) or the
channel's own (``scale="tile"``: each pattern shows); the picture's caption says which.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from fixtrace import validate
from fixtrace.errors import FixtraceError
from fixtrace.files import UniqueNames, make_folder, write_atomic, write_json_atomic, write_npy_atomic
from fixtrace.images.load import ImageSource
from fixtrace.images.preset_choice import PresetArg
from fixtrace.model.load import ModelSource
from fixtrace.render.colormaps import COLORMAPS, colours
from fixtrace.render.tiles import TileGrid, magnify, scaled_between, tile_grid, zoom_for
from fixtrace.toolbox.options import SCALES
from fixtrace.toolbox.stream import LayerReader

#: A tile's long side is brought near this many pixels (whole nearest-neighbour factors).
TILE = 64
#: What "zero" means for a channel's value: at most this (exactly 0 after a ReLU or Clip).
ZERO = 0.0


@dataclass
class LayerActivations:
    """One photo's values of one layer.

    Attributes:
        layer: the tensor name.
        values: float32 (C, H, W), channels first whatever the model's layout.
        layout: the layout the model keeps the map in (``"NCHW"`` or ``"NHWC"``).
        image: the photo as given.
    """

    layer: str
    values: np.ndarray
    layout: str
    image: Any = None

    @property
    def means(self) -> np.ndarray:
        """Each channel's mean over the map, float64 (C,)."""
        return self.values.mean(axis=(1, 2), dtype=np.float64)

    @property
    def maxima(self) -> np.ndarray:
        """Each channel's max over the map, float64 (C,)."""
        return self.values.max(axis=(1, 2)).astype(np.float64)

    @property
    def zero_fraction(self) -> np.ndarray:
        """Each channel's fraction of positions at or below ``ZERO``, float64 (C,)."""
        return (self.values <= ZERO).mean(axis=(1, 2), dtype=np.float64)

    @property
    def order(self) -> np.ndarray:
        """Channel indices by mean activation, highest first (ties: lower index first)."""
        return np.argsort(-self.means, kind="stable")

    def scale(self, scale: str = "shared") -> tuple[np.ndarray, np.ndarray]:
        """Each channel's (low, high) for its tile: black and white on the grey map, float64 (C,) each.

        Raises:
            OptionError: ``scale`` is not one of ``SCALES``.
        """
        scale = validate.choice("scale", scale, SCALES, flag="--tile-scale")
        low, high = self.values.min(axis=(1, 2)).astype(np.float64), self.maxima
        if scale == "shared":
            low, high = np.full_like(low, low.min()), np.full_like(high, high.max())
        return low, high

    def to_json(self, scale: str = "shared", grid: TileGrid | None = None, shown: Sequence[int] = ()) -> dict[str, Any]:
        """Layer, shapes, per-channel statistics, sort order and the tiles' scale and boxes."""
        scale = validate.choice("scale", scale, SCALES, flag="--tile-scale")
        low, high = self.scale(scale)
        channels, height, width = self.values.shape
        means, maxima, zeros = self.means, self.maxima, self.zero_fraction
        return {
            "layer": self.layer,
            "image": str(self.image) if isinstance(self.image, (str, os.PathLike)) else None,
            "shape": [channels, height, width],
            "layout": self.layout,
            "model_shape": [1, channels, height, width] if self.layout == "NCHW" else [1, height, width, channels],
            "values": "the .npy: float32 (C, H, W), channels first whatever the model's layout",
            "zero": f"a value <= {ZERO:g} (exactly 0 after a ReLU or Clip)",
            "order": self.order.tolist(),
            "channels": [{"channel": c, "mean": means[c], "max": maxima[c], "fraction_zero": zeros[c]} for c in range(channels)],
            "scale": {
                "mode": scale,
                "pixel": "round(255 * (v - low) / (high - low)), clipped to 0..255, before the colour map",
                **({"low": low[0], "high": high[0]} if scale == "shared" else {"low": low.tolist(), "high": high.tolist()}),
            },
            "tiles": [] if grid is None else [{"channel": int(c), "box": list(b)} for c, b in zip(shown, grid.boxes)],
        }


def feature_map(reader: LayerReader, layer: str) -> str:
    """``layer``, checked to be a rank-4 map of established layout that ``reader`` returns.

    Raises:
        OptionError: it is not (``LayerReader.nchw``'s message).
    """
    rank = len(reader.shapes.get(layer, (0, 0, 0, 0)))
    reader.nchw(layer, np.empty((0,) * rank, dtype=np.float32))
    return layer


def stream_activations(
    reader: LayerReader, images: Iterable[ImageSource], batch_size: int = 8
) -> Iterator[tuple[int, Any, dict[str, LayerActivations] | FixtraceError]]:
    """Each photo's (position, source, layer -> activations), or (position, source, why it failed),
    in the order given; the reader's layers must be feature maps (``feature_map``)."""
    for batch in reader.read(images, batch_size):
        done: dict[int, tuple[Any, dict[str, LayerActivations]]] = {k: (s, {}) for k, s in zip(batch.indices, batch.sources)}
        for layer in reader.layers if len(batch) else ():
            maps = reader.nchw(layer, batch.values[layer])
            for row, k in enumerate(batch.indices):
                done[k][1][layer] = LayerActivations(layer, np.ascontiguousarray(maps[row]), reader.layouts[layer], done[k][0])
        merged: dict[int, tuple[Any, Any]] = {**done, **batch.failed}
        for k in sorted(merged):
            yield k, merged[k][0], merged[k][1]


def layer_activations(
    model: ModelSource, image: ImageSource, layer: str, *, preset: PresetArg = None, threads: int = 0
) -> LayerActivations:
    """The values of ``layer`` for one photo, as onnxruntime computes them.

    Args:
        model: path, bytes or ``onnx.ModelProto``.
        image: a path, bytes, PIL image or RGB array.
        layer: a rank-4 feature map (``fixtrace layers MODEL`` lists them).
        preset: the preprocessing (default: the model's metadata preset, else imagenet).
        threads: onnxruntime threads (0: its choice).

    Raises:
        ModelError: the model cannot be read or run.
        OptionError: ``layer`` is not a tensor of the model, or not a feature map of known layout.
        ImageError: the photo cannot be read.
    """
    reader = LayerReader(model, [layer], preset=preset, threads=threads)
    feature_map(reader, layer)
    _, _, found = next(stream_activations(reader, [image], 1))
    if isinstance(found, FixtraceError):
        raise found
    return found[layer]


def activation_tiles(
    activations: LayerActivations, *, top: int | None = None, scale: str = "shared", colormap: str = "gray", tile: int = TILE
) -> tuple[TileGrid, list[int]]:
    """The channels as tiles in a grid, highest mean first, each labelled with its channel index.

    Args:
        activations: from ``layer_activations``.
        top: only the ``top`` channels by mean (default: all).
        scale: ``"shared"`` (the layer's min to max) or ``"tile"`` (each channel's own).
        colormap: one of ``COLORMAPS`` (gray: the pixel is the scaled value itself).
        tile: a tile's long side in pixels, roughly (maps are enlarged by whole factors).

    Returns:
        The grid and the channels its tiles show, in order.

    Raises:
        OptionError: a bad ``top``, ``scale``, ``colormap`` or ``tile``.
    """
    channels, height, width = activations.values.shape
    if top is not None:
        validate.integer("top", top, 1, flag="--top")
    validate.integer("tile", tile, 1)
    colormap = validate.choice("colormap", colormap, COLORMAPS, flag="--colormap")
    low, high = activations.scale(scale)
    shown = [int(c) for c in activations.order[:top]]
    factor = zoom_for(height, width, tile)
    tiles = [magnify(colours(colormap, scaled_between(activations.values[c], low[c], high[c])), factor) for c in shown]
    if scale == "shared":
        scale_line = f"one scale: {low[0]:.4g} (low) .. {high[0]:.4g} (high), {colormap}"
    else:
        scale_line = f"each tile its own scale: min (low) .. max (high), {colormap}"
    caption = [
        f"layer {activations.layer}",
        f"{len(shown)} of {channels} channels, {height}x{width} ({activations.layout} in the model)",
        "by mean activation, highest first; label: channel index",
        scale_line,
    ]
    return tile_grid(tiles, labels=[str(c) for c in shown], caption=caption), shown


def activation_grid(
    activations: LayerActivations, *, top: int | None = None, scale: str = "shared", colormap: str = "gray", tile: int = TILE
) -> Image.Image:
    """The picture of ``activation_tiles`` (same arguments)."""
    return activation_tiles(activations, top=top, scale=scale, colormap=colormap, tile=tile)[0].image


def save_activations(
    activations: LayerActivations,
    folder: str | Path,
    *,
    name: str | None = None,
    top: int | None = None,
    scale: str = "shared",
    colormap: str = "gray",
) -> list[Path]:
    """Write ``NAME.png`` (the grid), ``NAME.npy`` (float32 (C, H, W)) and ``NAME.json`` into ``folder``.

    Args:
        name: the files' stem (default: the layer name made safe for a file name).

    Returns:
        The files written.

    Raises:
        OutputError: a write failed.
    """
    folder = make_folder(folder)
    stem = name or UniqueNames().take(activations.layer)
    grid, shown = activation_tiles(activations, top=top, scale=scale, colormap=colormap)
    paths = [folder / f"{stem}.{suffix}" for suffix in ("png", "npy", "json")]
    write_atomic(paths[0], lambda p: grid.image.save(p, format="PNG"))
    write_npy_atomic(paths[1], activations.values)
    write_json_atomic(paths[2], activations.to_json(scale, grid, shown), indent=1)
    return paths
