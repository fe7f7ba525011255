"""``explanatory_graph``: stream a folder of photos through the model once, keep each chosen conv
layer's peaks, and mine the graph top-down."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fixtrace import validate
from fixtrace.errors import OptionError
from fixtrace.graph_mining.graph import Edge, ExplanatoryGraph, model_name
from fixtrace.graph_mining.mining import LayerNodes, Settings, edge_priors, fit_layer
from fixtrace.graph_mining.peaks import Peaks, join, map_peaks
from fixtrace.images.load import ImageSource
from fixtrace.images.preset_choice import PresetArg
from fixtrace.model.load import ModelSource
from fixtrace.model.receptive_field import ReceptiveField, receptive_field
from fixtrace.toolbox.layer_choice import conv_maps
from fixtrace.toolbox.stream import LayerReader

#: Peaks kept per filter map and photo (our choice; the authors search a 6x6 grid per node).
PEAKS = 8


@dataclass
class ConvLayers:
    """A model prepared to return chosen conv layers, lowest first, with their fields and grids."""

    reader: LayerReader
    fields: list[ReceptiveField]
    grids: list[tuple[int, int]]

    @property
    def names(self) -> list[str]:
        return self.reader.layers


def conv_layers(
    model: ModelSource, layers: Sequence[str], *, preset: PresetArg = None, output: str | None = None, threads: int = 0
) -> ConvLayers:
    """Open the model on ``layers``, each checked to be a conv's output, in graph order.

    Raises:
        OptionError: no layer, or one that is not a conv output (``--layers``).
        ModelError, UnsupportedOpError: as ``LayerReader`` and ``receptive_field``.
    """
    if isinstance(layers, str) or not layers:
        raise OptionError("layers (--layers) must name one or more conv outputs, comma-separated")
    reader = LayerReader(model, list(dict.fromkeys(layers)), preset=preset, output=output, threads=threads)
    convs = conv_maps(reader.graph)
    raw = {node.outputs[0] for node in reader.graph.nodes if node.op_type == "Conv" and node.outputs}
    for name in reader.layers:
        if name not in convs and name not in raw:
            producer = reader.graph.producer[name]  # LayerReader took computed tensors only
            raise OptionError(
                f"--layers {name!r} is the output of {producer.op_type} node {producer.name!r}, not of a Conv: give a Conv's output "
                "(or its BatchNorm/ReLU that follows; `fixtrace layers MODEL` lists the maps)"
            )
    order = {name: k for k, node in enumerate(reader.graph.nodes) for name in node.outputs}
    reader.layers.sort(key=lambda name: order[name])
    fields = [receptive_field(reader.graph, name, reader.shapes) for name in reader.layers]
    grids = []
    for name in reader.layers:
        shape = reader.nchw(name, np.broadcast_to(np.float32(0), reader.shapes[name])).shape
        grids.append((int(shape[2]), int(shape[3])))
    return ConvLayers(reader, fields, grids)


def read_peaks(
    convs: ConvLayers,
    images: Iterable[ImageSource],
    peaks: int,
    batch_size: int = 32,
    on_step: Callable[[str], None] | None = None,
    on_failure: Callable[[Any, str], None] | None = None,
) -> tuple[list[Peaks], list[Any], list[Any]]:
    """Every photo's peaks in each layer, one batch of maps in memory at a time.

    Returns:
        Peaks per layer (lowest first), the photos read, and their geometries.
    """
    parts: list[list[Peaks]] = [[] for _ in convs.names]
    sources, geometries = [], []
    for batch in convs.reader.read(images, batch_size):
        for source, exc in batch.failed.values():
            if on_failure is not None:
                on_failure(source, str(exc))
        if len(batch):
            for k, (name, rf) in enumerate(zip(convs.names, convs.fields)):
                parts[k].append(map_peaks(convs.reader.nchw(name, batch.values[name]), rf, peaks))
            sources += batch.sources
            geometries += batch.geometries
        batch.values.clear()  # the maps go now; only the peaks stay
        if on_step is not None:
            for index in sorted([*batch.indices, *batch.failed]):
                on_step(f"#{index}")
    return [join(p) if p else Peaks(np.zeros((0, 0, peaks, 2)), np.zeros((0, 0, peaks))) for p in parts], sources, geometries


def mine(
    convs: ConvLayers, found: list[Peaks], settings: Settings, on_layer: Callable[[str], None] | None = None
) -> tuple[list[LayerNodes], list[Edge]]:
    """The nodes of every layer, fitted from the top layer down, and their edges."""
    nodes: list[LayerNodes | None] = [None] * len(found)
    upper: LayerNodes | None = None
    for k in reversed(range(len(found))):
        if on_layer is not None:
            on_layer(convs.names[k])
        upper = nodes[k] = fit_layer(convs.names[k], found[k], convs.fields[k], convs.grids[k], upper, settings)
    fitted = [n for n in nodes if n is not None]
    edges = [
        Edge(k, child, parent, weight, (float(d[0]), float(d[1])), sigma)
        for k in range(len(fitted) - 1)
        for child, parent, weight, d, sigma in edge_priors(fitted[k], fitted[k + 1])
    ]
    # A parent that never scored with its child has no prior and no edge: the graph forgets it, so
    # that locating with the mined graph and with its saved file (edges only) agree.
    for k, layer in enumerate(fitted[:-1]):
        linked = {(e.child, e.parent) for e in edges if e.layer == k}
        for v, u in zip(*np.nonzero(layer.parents >= 0)):
            if (int(v), int(layer.parents[v, u])) not in linked:
                layer.parents[v, u] = -1
                layer.weights[v, u] = 0
    return fitted, edges


def explanatory_graph(
    model: ModelSource,
    images: Iterable[ImageSource],
    layers: Sequence[str],
    *,
    peaks: int = PEAKS,
    settings: Settings | None = None,
    preset: PresetArg = None,
    output: str | None = None,
    batch_size: int = 32,
    threads: int = 0,
    on_step: Callable[[str], None] | None = None,
    on_failure: Callable[[Any, str], None] | None = None,
) -> ExplanatoryGraph:
    """Mine the explanatory graph (Zhang et al., AAAI 2018) of ``layers`` over photos of one category.

    Args:
        model: path, bytes or ``onnx.ModelProto``.
        images: the photos (paths, arrays, ...), read once; unreadable ones are skipped.
        layers: conv outputs (any order; the deepest is the graph's top).
        peaks: local maxima kept per filter map and photo.
        settings: the mining parameters (``Settings``: pattern_density, iterations, top_n, top_m, ...).
        preset, output, threads: as ``LayerReader``.
        batch_size: photos per forward.
        on_step: called once per photo read; on_failure: with (photo, why) for each skipped one.

    Returns:
        The graph (``fixtrace.graph_mining.save`` writes its files; ``locate`` finds its nodes on new photos).

    Raises:
        OptionError: a bad layer or parameter, or no photo could be read.
        ModelError, UnsupportedOpError: the model cannot be run or its fields composed.
    """
    settings = settings or Settings()
    check_settings(settings)
    validate.integer("peaks", peaks, 1, flag="--peaks")
    convs = conv_layers(model, layers, preset=preset, output=output, threads=threads)
    found, sources, geometries = read_peaks(convs, images, peaks, batch_size, on_step, on_failure)
    if not sources:
        raise OptionError("no photo could be read: the explanatory graph needs photos of one category")
    nodes, edges = mine(convs, found, settings)
    photos = [str(s) if not hasattr(s, "shape") else f"#{k}" for k, s in enumerate(sources)]
    return ExplanatoryGraph(
        model_name(model), convs.reader.preset.to_dict(), nodes, convs.fields, edges, peaks, settings, photos, geometries, sources
    )


def check_settings(settings: Settings) -> None:
    """Each parameter in range, as one-line OptionErrors naming its flag."""
    if settings.pattern_density is not None:
        validate.number("pattern_density", settings.pattern_density, 0.0, 1.0, flag="--pattern-density")
    validate.integer("iterations", settings.iterations, 1, flag="--iterations")
    validate.integer("top_n", settings.top_n, 1, flag="--top-n")
    validate.integer("top_m", settings.top_m, 1, flag="--top-m")
    validate.integer("top_images", settings.top_images, 1, flag="--top-images")
    validate.number("tau", settings.tau, 0.0, 1e6, flag="--tau", low_open=False)
    validate.number("init_delta", settings.init_delta, 0.0, 1.0, flag="--init-delta")
    validate.number("deform_ratio", settings.deform_ratio, 0.0, 1e6, flag="--deform-ratio")
