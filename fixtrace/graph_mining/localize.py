"""Part localisation with a mined graph: each node's position on new photos, found top-down from
the peaks of its filter and the positions its parents were found at (the paper's inference)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from fixtrace.errors import OptionError
from fixtrace.graph_mining.build import conv_layers, read_peaks
from fixtrace.graph_mining.graph import ExplanatoryGraph
from fixtrace.graph_mining.mining import LayerNodes, infer, parent_shift
from fixtrace.graph_mining.peaks import Peaks
from fixtrace.images.geometry import Geometry
from fixtrace.images.load import ImageSource
from fixtrace.images.preset_choice import PresetArg
from fixtrace.images.presets import Preset
from fixtrace.model.load import ModelSource


@dataclass
class Located:
    """Where a graph's nodes are on one photo.

    Attributes:
        source: the photo as given.
        geometry: how it was cut to the model input.
        positions: per layer (lowest first), (U, 2) each node's (row, col) in input pixels.
        scores: per layer, (U,) each node's inference score (0: not found).
    """

    source: Any
    geometry: Geometry
    positions: list[np.ndarray]
    scores: list[np.ndarray]

    def on_photo(self, layer: int) -> np.ndarray:
        """(U, 2) the layer's node positions as (x, y) photo pixels."""
        rows, cols = self.positions[layer][:, 0], self.positions[layer][:, 1]
        return self.geometry.to_original(np.clip(rows, 0, None), np.clip(cols, 0, None))


def locate_peaks(graph: ExplanatoryGraph, found: list[Peaks]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Each node's position and score on photos whose peaks are ``found`` (a list per layer).

    Returns:
        Per layer (lowest first): positions (photos, U, 2) and scores (photos, U).
    """
    positions: list[np.ndarray] = [np.zeros(0)] * len(graph.layers)
    scores: list[np.ndarray] = [np.zeros(0)] * len(graph.layers)
    upper: LayerNodes | None = None
    for k in reversed(range(len(graph.layers))):
        nodes = graph.layers[k]
        values = found[k].values / nodes.scale[None, :, None]
        shift = parent_shift(upper, nodes.parents, slice(None), (len(nodes), 1)) if upper is not None else 0.0
        prior = nodes.mu[None, :, None] + shift
        peaks = found[k].positions[:, nodes.filters]  # each node its own filter's peaks: (n, U, P, 2)
        result = infer(peaks, values[:, nodes.filters], prior, nodes.sigma[:, None], graph.settings)
        positions[k], scores[k] = result.positions[:, :, 0], result.scores[:, :, 0]
        upper = replace(nodes, positions=positions[k], scores=scores[k])
    return positions, scores


def locate(
    graph: ExplanatoryGraph,
    images: Iterable[ImageSource],
    *,
    model: ModelSource | None = None,
    preset: PresetArg = None,
    batch_size: int = 16,
    threads: int = 0,
) -> list[Located]:
    """Find the graph's nodes on photos.

    Args:
        graph: a mined (or loaded) graph.
        images: the photos; unreadable ones are left out.
        model: the model (default: the path the graph recorded).
        preset: the preprocessing (default: the graph's).
        batch_size, threads: as ``LayerReader``.

    Returns:
        One ``Located`` per photo read.

    Raises:
        OptionError, ModelError: the model or its layers do not fit the graph.
    """
    chosen = preset if preset is not None else Preset.from_dict(graph.preset, "the graph's preset")
    convs = conv_layers(
        model if model is not None else graph.model, [n.layer for n in graph.layers], preset=chosen, threads=threads
    )
    for nodes in graph.layers:
        shape = convs.reader.shapes[nodes.layer]
        channels = convs.reader.nchw(nodes.layer, np.broadcast_to(np.float32(0), shape)).shape[1]
        if len(nodes.scale) != channels:
            raise OptionError(
                f"the graph was mined on {len(nodes.scale)} filters of {nodes.layer!r}; this model's has {channels}: "
                "locate with the model the graph was mined on"
            )
    found, sources, geometries = read_peaks(convs, images, graph.peaks, batch_size)
    if not sources:
        return []
    positions, scores = locate_peaks(graph, found)
    return [
        Located(source, geometry, [p[i] for p in positions], [s[i] for s in scores])
        for i, (source, geometry) in enumerate(zip(sources, geometries))
    ]
