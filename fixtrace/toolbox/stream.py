"""A model's intermediate tensors over a stream of photos, a batch at a time: what every toolbox
view (activations, top images, t-SNE codes) reads. One onnxruntime session returns the chosen
layers and the class scores; no backward rule and no numba kernel is involved."""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fixtrace.errors import FixtraceError, OptionError
from fixtrace.images.geometry import Geometry
from fixtrace.images.load import ImageSource, load_photo
from fixtrace.images.preprocess import input_size, preprocess
from fixtrace.images.preset_choice import PresetArg, choose_preset
from fixtrace.model.checks import check_image_channels
from fixtrace.model.layer_graph import LayerGraph
from fixtrace.model.layout import feature_layouts, to_nchw
from fixtrace.model.load import ModelSource, load_model
from fixtrace.model.outputs import find_logits
from fixtrace.runtime.session import Session, padded
from fixtrace.runtime.threads import limit_threads


@dataclass
class LayerBatch:
    """One batch of the stream.

    Attributes:
        indices: each photo's position in the input stream.
        sources: the photos as given (paths, arrays, ...).
        photos: the decoded RGB photos (uint8; a reduced copy of a huge one).
        geometries: how each model input was cut from its photo.
        values: layer -> float32 (n, ...) as onnxruntime computed it, in the model's layout.
        scores: float64 (n, classes) raw values of the class-score output.
        failed: stream position -> (the source, why it could not be read) for this batch's failures.
    """

    indices: list[int]
    sources: list[Any]
    photos: list[np.ndarray]
    geometries: list[Geometry]
    values: dict[str, np.ndarray]
    scores: np.ndarray
    failed: dict[int, tuple[Any, FixtraceError]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.indices)


class LayerReader:
    """A model prepared to return chosen intermediate tensors for photos.

    Args:
        model: path, bytes or ``onnx.ModelProto``.
        layers: tensor names to return (``fixtrace layers MODEL`` lists them).
        preset: the preprocessing (see ``fixtrace.Explainer``; default: the model's metadata
            preset, else imagenet).
        output: the class-score output (default: the first).
        threads: onnxruntime and BLAS threads (0: the libraries' choice).

    Raises:
        ModelError: the model cannot be read, is not a 1- or 3-channel image model, or
            onnxruntime cannot load it.
        OptionError: a layer that is not a tensor the graph computes (the closest names given).
    """

    def __init__(
        self, model: ModelSource, layers: Sequence[str], *, preset: PresetArg = None, output: str | None = None, threads: int = 0
    ) -> None:
        self.graph = LayerGraph.from_model(load_model(model))
        check_image_channels(self.graph)
        self.preset, self.preset_source = choose_preset(preset).resolve(self.graph)
        self.layers = [check_layer(self.graph, name) for name in layers]
        self.logits = find_logits(self.graph, output)
        self.threads = threads
        width, height = input_size(self.graph.image_input, self.preset)
        spec = self.graph.image_input
        channels = spec.channels or 3
        one = (1, channels, height, width) if spec.layout == "NCHW" else (1, height, width, channels)
        #: Tensor name -> shape for one photo (batch dim 1).
        self.shapes = self.graph.shapes(one)
        #: Layer -> "NCHW" or "NHWC" where the graph establishes the layout of a rank-4 map.
        self.layouts = {name: layout for name, layout in feature_layouts(self.graph).items() if name in self.layers}
        self.session = Session(self.graph, [*self.layers, self.logits], threads=threads)

    def nchw(self, layer: str, value: np.ndarray) -> np.ndarray:
        """A rank-4 ``layer`` value as (N, C, H, W) (a view when it is one already).

        Raises:
            OptionError: the layer is not a feature map of known layout.
        """
        layout = self.layouts.get(layer)
        if layout is None or value.ndim != 4:
            raise OptionError(
                f"layer {layer!r} (shape {tuple(self.shapes.get(layer, value.shape[1:]))}) is not a feature map whose "
                "layout the graph establishes: pick a conv's, pool's or activation's output (`fixtrace layers MODEL`)"
            )
        return to_nchw(value, layout)

    def read(self, images: Iterable[ImageSource], batch_size: int = 32) -> Iterator[LayerBatch]:
        """The chosen layers of each photo, ``batch_size`` photos per forward, streamed.

        A photo that cannot be read is reported in its batch's ``failed``; the others go on.
        A batch whose forward fails raises (the model cannot run such an input).

        Raises:
            OptionError: a bad batch size.
            InputShapeError, ModelError: onnxruntime cannot run a batch.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise OptionError(f"batch_size (--batch-size) must be a whole number of at least 1, not {batch_size!r}")
        size = min(batch_size, self.graph.image_input.fixed_batch or batch_size)
        stream = iter(images)
        first = 0
        while chunk := list(itertools.islice(stream, size)):
            batch = LayerBatch([], [], [], [], {}, np.zeros((0, 0)))
            samples = []
            for k, source in enumerate(chunk, start=first):
                try:
                    photo = load_photo(source)
                    sample, geometry = preprocess(photo.pixels, self.graph.image_input, self.preset, photo.size)
                except FixtraceError as exc:
                    batch.failed[k] = (source, exc)
                    continue
                batch.indices.append(k)
                batch.sources.append(source)
                batch.photos.append(photo.pixels)
                batch.geometries.append(geometry)
                samples.append(sample)
            first += len(chunk)
            if samples:
                with limit_threads(self.threads):  # a fixed batch dim gets zero rows, dropped below
                    values = self.session.run(padded(np.stack(samples), self.graph.image_input.fixed_batch))
                n = len(samples)
                batch.values = {name: np.asarray(values[name][:n], dtype=np.float32) for name in self.layers}
                batch.scores = values[self.logits][:n].reshape(n, -1).astype(np.float64)
            yield batch


def check_layer(graph: LayerGraph, name: str) -> str:
    """``name``, checked to be a tensor the graph computes.

    Raises:
        OptionError: it is not; the closest names are suggested.
    """
    if not isinstance(name, str) or not name:
        raise OptionError(f"a layer must be a tensor name (`fixtrace layers MODEL` lists them), not {name!r}")
    if name in graph.producer:
        return name
    close = difflib.get_close_matches(name, list(graph.producer), n=3)
    hint = f" (closest: {', '.join(close)})" if close else ""
    raise OptionError(f"layer {name!r} is not a tensor the model computes{hint}; `fixtrace layers MODEL` lists them")
