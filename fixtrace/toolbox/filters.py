"""A conv layer's filters as pictures, straight from the ONNX initializer.

ONNX Conv weights are always (out, in/group, kh, kw), whatever layout the model's input has. Each
filter is scaled to [0, 1] on its own (its min black, its max white: pixel = round(255 (w - min) /
(max - min))) and enlarged with nearest neighbour. The first conv, reading the 3-channel image,
shows each filter as a colour patch; it reads the channels in the order they are fed, so when the
preset feeds BGR (caffe) its input channels are reversed to show RGB. Any other conv shows grey
patches: the first N filters (rows) by their first N input channels (columns); a depthwise conv
(one input channel per filter) one patch per filter.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from fixtrace import validate
from fixtrace.errors import ModelError, OptionError
from fixtrace.files import UniqueNames, make_folder, write_atomic, write_json_atomic, write_npy_atomic
from fixtrace.images.preset_choice import PresetArg, choose_preset
from fixtrace.model.layer_graph import LayerGraph, Node
from fixtrace.model.load import ModelSource, load_model
from fixtrace.render.resample import to_uint8
from fixtrace.render.tiles import TileGrid, magnify, scaled_between, tile_grid, zoom_for
from fixtrace.toolbox.options import FIRST
from fixtrace.toolbox.stream import check_layer

#: Ops between the image input and the first conv that keep the channels in the order fed.
_KEEP_CHANNELS = {"Transpose", "Identity", "Cast", "Pad", "Add", "Sub", "Mul", "Div", "BatchNormalization"}
#: A patch's long side is brought near this many pixels (whole nearest-neighbour factors).
TILE = 40


@dataclass
class ConvFilters:
    """A Conv node's weights.

    Attributes:
        weights: float32 (out, in/group, kh, kw) as the initializer holds them.
        layer: the Conv's output tensor.
        node: the Conv node's name.
        group: the Conv's ``group``.
        colour: the conv reads the 3-channel image (through ops that keep the channel order):
            its filters show as colour patches.
        bgr: the image is fed BGR (the preset says so): the colour patches reverse the input channels.
    """

    weights: np.ndarray
    layer: str
    node: str
    group: int = 1
    colour: bool = False
    bgr: bool = False

    @property
    def kind(self) -> str:
        """``"rgb"`` (colour patches), ``"single"`` (one input channel per filter, e.g. depthwise) or ``"grey"``."""
        return "rgb" if self.colour else "single" if self.weights.shape[1] == 1 else "grey"

    @property
    def ranges(self) -> tuple[np.ndarray, np.ndarray]:
        """Each filter's (min, max) over all its weights: black and white of its patches, float64 (out,) each."""
        flat = self.weights.reshape(len(self.weights), -1).astype(np.float64)
        return flat.min(axis=1), flat.max(axis=1)

    def to_json(self, grid: TileGrid | None = None, shown: list[tuple[int, int | None]] | None = None) -> dict[str, Any]:
        low, high = self.ranges
        return {
            "layer": self.layer,
            "node": self.node,
            "shape": list(self.weights.shape),
            "group": self.group,
            "kind": self.kind,
            "channels": ("BGR fed, shown reversed as RGB" if self.bgr else "RGB") if self.colour else "grey per input channel",
            "weights": "the .npy: float32 (out, in/group, kh, kw) as the initializer holds them (fed channel order)",
            "pixel": "round(255 * (w - min) / (max - min)) with the filter's own min and max, enlarged with nearest",
            "min": low.tolist(),
            "max": high.tolist(),
            "tiles": [
                {"filter": f, "input_channel": c, "box": list(b)} for (f, c), b in zip(shown or [], grid.boxes if grid else [])
            ],
        }


def conv_filters(model: ModelSource, layer: str | None = None, *, preset: PresetArg = None) -> ConvFilters:
    """The weights of a Conv node.

    Args:
        model: path, bytes or ``onnx.ModelProto``.
        layer: the Conv's output tensor or node name (default: the first Conv reading the image).
        preset: the preprocessing; only its channel order matters (default: the model's
            metadata preset, else imagenet).

    Raises:
        ModelError: the model cannot be read, or has no Conv, or its weights are not constant.
        OptionError: ``layer`` is not a tensor or node of the model, or not a 2-D Conv's.
    """
    graph = LayerGraph.from_model(load_model(model))
    node = _conv_node(graph, layer)
    weights = graph.constants.get(node.inputs[1]) if len(node.inputs) > 1 else None
    if weights is None:
        raise ModelError(f"the weights of Conv {node.name!r} are computed by the graph, not stored: filters cannot show them")
    if weights.ndim != 4:
        raise OptionError(f"layer {node.outputs[0]!r} is a {weights.ndim - 2}-D Conv; filters shows 2-D convs' weights")
    group = int(node.attr("group", 1))
    colour = weights.shape[1] == 3 and group == 1 and _reads_image(graph, node)
    bgr = colour and choose_preset(preset).resolve(graph)[0].bgr
    return ConvFilters(np.asarray(weights, dtype=np.float32), node.outputs[0], node.name, group, colour, bgr)


def _conv_node(graph: LayerGraph, layer: str | None) -> Node:
    convs = [n for n in graph.nodes if n.op_type == "Conv"]
    if layer is None:
        if not convs:
            raise ModelError("the model has no Conv node: filters shows a Conv's weights")
        return next((n for n in convs if _reads_image(graph, n)), convs[0])
    node = graph.producer.get(layer) if isinstance(layer, str) else None
    if node is None and isinstance(layer, str) and graph.graph.has_node(layer):
        node = graph.node(layer)
    if node is None:
        check_layer(graph, layer)  # raises, naming the closest tensors
        raise OptionError(f"layer {layer!r} is not computed by a node")
    if node.op_type != "Conv":
        examples = ", ".join(n.outputs[0] for n in convs[:2])
        raise OptionError(
            f"layer {layer!r} is a {node.op_type} node's, not a Conv's: --layer must name a Conv's output or node "
            f"(e.g. {examples}; `fixtrace layers MODEL` lists them with their op)"
        )
    return node


def _reads_image(graph: LayerGraph, node: Node) -> bool:
    """True when ``node``'s data input is the image through ops that keep the channel order."""
    tensor = node.inputs[0]
    while tensor != graph.image_input.name:
        producer = graph.producer.get(tensor)
        computed = [t for t in producer.inputs if not graph.is_constant(t)] if producer is not None else []
        if producer is None or producer.op_type not in _KEEP_CHANNELS or len(computed) != 1:
            return False
        tensor = computed[0]
    return True


def filter_tiles(
    filters: ConvFilters, first: int | None = None, tile: int = TILE
) -> tuple[TileGrid, list[tuple[int, int | None]]]:
    """The filters as patches in a grid.

    Args:
        filters: from ``conv_filters``.
        first: colour and single-channel patches: the first ``first`` filters (default: all);
            grey grids: the first ``first`` filters by their first ``first`` input channels
            (default: ``FIRST``).
        tile: a patch's long side in pixels, roughly.

    Returns:
        The grid and, for each tile, (filter, input channel; None for a colour patch).

    Raises:
        OptionError: a bad ``first`` or ``tile``.
    """
    if first is not None:
        validate.integer("first", first, 1, flag="--first")
    validate.integer("tile", tile, 1)
    out, inputs, kh, kw = filters.weights.shape
    low, high = filters.ranges
    factor = zoom_for(kh, kw, tile)
    weights = filters.weights[:, ::-1] if filters.bgr else filters.weights

    def patch(f: int, c: int | None) -> np.ndarray:
        unit = scaled_between(weights[f] if c is None else weights[f, c], low[f], high[f])
        pixels = to_uint8(unit.transpose(1, 2, 0) if c is None else unit)
        return magnify(pixels if c is None else np.repeat(pixels[..., None], 3, axis=2), factor)

    shape = f"{out}x{inputs}x{kh}x{kw}" + (f", group {filters.group}" if filters.group > 1 else "")
    caption = [
        f"layer {filters.layer}",
        f"Conv node {filters.node}, weights {shape}",
        "each filter scaled to its own min (black) .. max (white)",
    ]
    if filters.kind == "grey":
        rows, columns = range(min(first or FIRST, out)), range(min(first or FIRST, inputs))
        shown: list[tuple[int, int | None]] = [(f, c) for f in rows for c in columns]
        caption.append(f"rows: filters 0..{len(rows) - 1}, columns: input channels 0..{len(columns) - 1}")
        grid = tile_grid(
            [patch(f, c) for f, c in shown],
            len(columns),
            row_labels=[str(f) for f in rows],
            column_labels=[str(c) for c in columns],
            caption=caption,
        )
        return grid, shown
    shown = [(f, None if filters.colour else 0) for f in range(min(first or out, out))]
    order = "input channels reversed: the model is fed BGR" if filters.bgr else "RGB as fed"
    caption.append(f"colour patches, {order}; label: filter index" if filters.colour else "label: filter index")
    return tile_grid([patch(f, c) for f, c in shown], labels=[str(f) for f, _ in shown], caption=caption), shown


def filter_grid(filters: ConvFilters, first: int | None = None, tile: int = TILE) -> Image.Image:
    """The picture of ``filter_tiles`` (same arguments)."""
    return filter_tiles(filters, first, tile)[0].image


def save_filters(filters: ConvFilters, folder: str | Path, *, first: int | None = None) -> list[Path]:
    """Write ``LAYER.png`` (the grid), ``LAYER.npy`` (the weights) and ``LAYER.json`` into ``folder``.

    Returns:
        The files written.

    Raises:
        OutputError: a write failed.
    """
    folder = make_folder(folder)
    stem = UniqueNames().take(filters.layer)
    grid, shown = filter_tiles(filters, first)
    paths = [folder / f"{stem}.{suffix}" for suffix in ("png", "npy", "json")]
    write_atomic(paths[0], lambda p: grid.image.save(p, format="PNG"))
    write_npy_atomic(paths[1], filters.weights)
    write_json_atomic(paths[2], filters.to_json(grid, shown), indent=1)
    return paths
