"""CNN codes: one vector per photo read from a layer of the model (by default the input of its
final dense layer, what the classifier itself reads), streamed over the photos in batches."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fixtrace import ops, validate
from fixtrace.errors import FixtraceError, ModelError, OptionError
from fixtrace.images.load import ImageSource
from fixtrace.images.preset_choice import PresetArg
from fixtrace.labels import class_names
from fixtrace.model.layer_graph import LayerGraph
from fixtrace.model.load import ModelSource, load_model
from fixtrace.model.outputs import ClassOutput, choose_output, find_logits
from fixtrace.toolbox.stream import LayerReader

#: Ops whose output is a global average (or sum) over the rows and columns of a map.
_POOLS = ("GlobalAveragePool", "GlobalMaxPool", "ReduceMean", "ReduceSum", "ReduceMax")
#: How a rank-4 layer becomes one vector per photo.
REDUCTIONS = ("flatten", "pool")


@dataclass(frozen=True)
class CodeLayer:
    """The tensor the codes are read from.

    Attributes:
        name: the tensor.
        reason: why it was chosen, in words.
    """

    name: str
    reason: str


@dataclass
class Codes:
    """The codes of a stream of photos (only those that could be read, in stream order).

    Attributes:
        layer: the tensor read, and why.
        reduction: how a rank-4 layer became a vector: ``flatten`` (in the model's layout) or
            ``pool`` (the mean over rows and columns).
        values: float32 (N, D), one row per photo.
        sources: each photo as given.
        indices: each photo's position in the input stream.
        predicted: int64 (N,) the model's top class.
        probability: float64 (N,) its probability.
        class_names: the name of every class of the model.
        failed: stream position -> (the source, why it could not be read).
    """

    layer: CodeLayer
    reduction: str
    values: np.ndarray
    sources: list[Any]
    indices: list[int]
    predicted: np.ndarray
    probability: np.ndarray
    class_names: list[str]
    failed: dict[int, tuple[Any, FixtraceError]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.values)


def default_code_layer(graph: LayerGraph, logits: str) -> CodeLayer:
    """The input of the dense layer that computes ``logits``, followed up through reshapes and
    identities (Flatten, Reshape, Squeeze, Identity, Dropout): a GAP model's pooled vector, a VGG's
    last hidden layer after its nonlinearity.

    Raises:
        ModelError: the logits do not come from a Gemm or MatMul with a constant weight.
    """
    tensor, _ = _through(graph, logits, bias=True)
    dense = graph.producer.get(tensor)
    if dense is None or dense.op_type not in ("Gemm", "MatMul") or not graph.is_constant(dense.inputs[1]):
        found = f"{dense.op_type} {dense.name!r}" if dense is not None else "the input"
        raise ModelError(
            f"cannot recognise the classifier head: the class scores {logits!r} come from {found}, not a dense layer "
            "(Gemm or MatMul with a constant weight); pick the codes with --layer NAME (`fixtrace layers MODEL` lists them)"
        )
    name, skipped = _through(graph, dense.inputs[0])
    producer = graph.producer.get(name)
    what = f"the input of the final dense layer {dense.op_type} {dense.name!r}"
    if skipped:
        what += f", before {' and '.join(skipped)}"
    if producer is not None and producer.op_type in _POOLS:
        what += f": the pooled vector ({producer.op_type})"
    elif producer is not None:
        what += f": the output of {producer.op_type} {producer.name!r}"
    return CodeLayer(name, what)


def _through(graph: LayerGraph, tensor: str, bias: bool = False) -> tuple[str, list[str]]:
    """``tensor`` followed up through ops that only re-index it (and, with ``bias``, adds of a
    constant), with the op types passed."""
    skipped: list[str] = []
    while tensor in graph.producer:
        node = graph.producer[tensor]
        computed = [t for t in node.inputs if t and not graph.is_constant(t)]
        if not (ops.has_trait(node, "reindex") or (bias and node.op_type == "Add" and len(computed) == 1)):
            break
        skipped.append(node.op_type)
        tensor = computed[0]
    return tensor, skipped


def read_codes(
    model: ModelSource,
    images: Iterable[ImageSource],
    layer: str | None = None,
    *,
    reduction: str = "flatten",
    preset: PresetArg = None,
    output: str | None = None,
    labels: str | Path | None = None,
    batch_size: int = 32,
    threads: int = 0,
    on_start: Callable[[LayerReader, CodeLayer], None] | None = None,
    on_step: Callable[[Any], None] | None = None,
) -> Codes:
    """Stream the photos through the model and keep one float32 code per photo.

    Args:
        model: path, bytes or ``onnx.ModelProto``.
        images: the photos (paths, bytes, PIL images, arrays), read ``batch_size`` at a time.
        layer: the tensor to read (default: ``default_code_layer``).
        reduction: a rank-4 layer is ``flatten``-ed in the model's layout (every value kept) or
            ``pool``-ed (mean over rows and columns: one value per channel).
        preset, output, threads: as ``LayerReader``.
        labels: a class names file (default: the model's own names, see ``fixtrace.labels``).
        batch_size: photos per forward.
        on_start: called with the prepared reader and the layer before the first photo.
        on_step: called with each photo's source once it is read (or failed).

    Returns:
        The codes, with each photo's predicted class; the photos that could not be read in ``failed``.

    Raises:
        ModelError: the model cannot be read, its output is not class scores, or (without ``layer``)
            its head is not recognised.
        OptionError: a bad layer, reduction, batch size or labels file.
    """
    reduction = validate.choice("reduction", reduction, REDUCTIONS)
    graph = LayerGraph.from_model(load_model(model))
    chosen = (
        default_code_layer(graph, find_logits(graph, output))
        if layer is None
        else CodeLayer(validate.text("layer", layer, "--layer") or "", "asked for with --layer")
    )
    reader = LayerReader(graph.model, [chosen.name], preset=preset, output=output, threads=threads)
    shape = reader.shapes.get(reader.logits)
    names = class_names(int(np.prod(shape[1:])), labels, reader.graph.model) if shape else []  # a bad file fails first
    if on_start is not None:
        on_start(reader, chosen)
    chunks: list[np.ndarray] = []
    top: list[np.ndarray] = []
    top_probability: list[np.ndarray] = []
    sources: list[Any] = []
    indices: list[int] = []
    failed: dict[int, tuple[Any, FixtraceError]] = {}
    scores: ClassOutput | None = None
    for batch in reader.read(images, batch_size):
        failed |= batch.failed
        if len(batch):
            if scores is None:
                scores = choose_output(reader.graph, output, {reader.logits: batch.scores})
                names = names if len(names) == scores.classes else class_names(scores.classes, labels, reader.graph.model)
            chunks.append(_vectors(reader, chosen.name, batch.values[chosen.name], reduction))
            probabilities = scores.probabilities(batch.scores)
            top.append(probabilities.argmax(axis=1))
            top_probability.append(probabilities[np.arange(len(batch)), top[-1]])
            sources += batch.sources
            indices += batch.indices
        if on_step is not None:
            given = dict(zip(batch.indices, batch.sources)) | {k: source for k, (source, _) in batch.failed.items()}
            for k in sorted(given):
                on_step(given[k])
    width = code_width(reader, chosen.name, reduction)
    return Codes(
        layer=chosen,
        reduction=reduction,
        values=np.concatenate(chunks) if chunks else np.zeros((0, width), dtype=np.float32),
        sources=sources,
        indices=indices,
        predicted=np.concatenate(top).astype(np.int64) if top else np.zeros(0, dtype=np.int64),
        probability=np.concatenate(top_probability) if top else np.zeros(0),
        class_names=names,
        failed=failed,
    )


def code_width(reader: LayerReader, layer: str, reduction: str) -> int:
    """Values per code (0 when the graph does not tell the layer's shape)."""
    shape = reader.shapes.get(layer)
    if shape is None:
        return 0
    if reduction == "pool" and len(shape) == 4:
        return int(shape[1] if reader.layouts.get(layer, "NCHW") == "NCHW" else shape[3])
    return int(np.prod(shape[1:], dtype=np.int64))


def _vectors(reader: LayerReader, layer: str, value: np.ndarray, reduction: str) -> np.ndarray:
    """A batch of a layer's values as float32 (n, D) codes."""
    if reduction == "pool":
        if value.ndim != 4:
            raise OptionError(
                f"--pool averages a rank-4 feature map over its rows and columns; layer {layer!r} has shape "
                f"{tuple(value.shape[1:])} per photo (leave --pool out to flatten it)"
            )
        return np.ascontiguousarray(reader.nchw(layer, value).mean(axis=(2, 3), dtype=np.float64), dtype=np.float32)
    return np.ascontiguousarray(value.reshape(len(value), -1), dtype=np.float32)
