"""Where CAM finds its class weights: the classifier heads exporters write.

A CAM head is a global average pool of a map, then (optionally) a linear layer: Gemm, or
MatMul + Add (a Keras Dense through tf2onnx), with reshapes (Flatten, Squeeze, Reshape,
Identity) and a constant scale anywhere between. The pool is GlobalAveragePool, ReduceMean over
the map's rows and columns, or ReduceSum over them (divided by the cell count, or not). Without
a linear layer the pooled map's channels are the classes: a 1x1 conv right before the pool gives
the class weights (conv then pool, NiN-style); otherwise the map's class channel is read itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fixtrace import ops
from fixtrace.errors import ModelError, UnsupportedOpError
from fixtrace.model.layer_graph import LayerGraph, Node
from fixtrace.model.layout import channel_axis, feature_layouts
from fixtrace.ops.base import NodeRule
from fixtrace.ops.dense import dense_matrix

_POOLS = ("GlobalAveragePool", "ReduceMean", "ReduceSum")
_FIX = "use --method gradcam"


@dataclass(frozen=True)
class CamHead:
    """What CAM reads.

    Attributes:
        layer: the map whose channels the weights combine.
        layout: its layout, ``"NCHW"`` or ``"NHWC"``.
        weights: float32 (K, classes), scaled so that the spatial mean of sum_k w_ck A_k is the
            class score less its bias.
        summed: the pool sums instead of averaging: the weights count once per cell (times H*W).
    """

    layer: str
    layout: str
    weights: np.ndarray
    summed: bool = False


def cam_head(graph: LayerGraph, logits: str, shapes: dict[str, tuple[int, ...]]) -> CamHead:
    """The CAM head ending at ``logits`` (``shapes``: at the model's input size).

    Raises:
        ModelError: the logits are not a linear read of a global average pool, naming what was found.
    """
    tensor = _skip(graph, logits, bias=True)
    node = graph.producer.get(tensor)
    weights = None
    if node is not None and node.op_type in ("Gemm", "MatMul"):
        weights = _dense_weights(graph, node)
        tensor = node.inputs[0]
    tensor, scale = _scaled(graph, tensor)
    pool = graph.producer.get(tensor)
    if pool is None or pool.op_type not in _POOLS:
        what = "the fully connected layer" if weights is not None else "the logits"
        raise ModelError(f"CAM needs a global average pool before {what}; found {pool.op_type if pool else 'the input'}: {_FIX}")
    layout = _pooled_layout(graph, pool)
    layer = pool.inputs[0]
    if weights is None:
        layer, weights = _class_maps(graph, shapes, layer, layout)
        layout = "NCHW" if layer != pool.inputs[0] else layout
    return CamHead(layer, layout, (weights * scale).astype(np.float32), summed=pool.op_type == "ReduceSum")


def _skip(graph: LayerGraph, tensor: str, bias: bool = False) -> str:
    """``tensor`` followed up through reshapes (and, with ``bias``, adds of a constant)."""
    while tensor in graph.producer:
        node = graph.producer[tensor]
        computed = [t for t in node.inputs if not graph.is_constant(t)]
        if ops.has_trait(node, "reindex") or (bias and node.op_type == "Add" and len(computed) == 1):
            tensor = computed[0]
        else:
            return tensor
    return tensor


def _scaled(graph: LayerGraph, tensor: str) -> tuple[str, float]:
    """``tensor`` followed up through reshapes and Mul / Div by a constant scalar, with their product."""
    scale = 1.0
    while True:
        tensor = _skip(graph, tensor)
        node = graph.producer.get(tensor)
        if node is None or node.op_type not in ("Mul", "Div") or not graph.is_constant(node.inputs[1]):
            return tensor, scale
        factor = graph.constants[node.inputs[1]]
        if factor.size != 1 or not float(factor.reshape(-1)[0]) > 0:
            raise ModelError(
                f"CAM reads a pool scaled by one positive constant; {node.op_type} {node.name!r} scales by {factor.reshape(-1)[:4]}: "
                f"{_FIX}"
            )
        value = float(factor.reshape(-1)[0])
        scale *= value if node.op_type == "Mul" else 1.0 / value
        tensor = node.inputs[0]


def _dense_weights(graph: LayerGraph, node: Node) -> np.ndarray:
    """(K, classes) alpha * W of a Gemm or MatMul with a constant weight."""
    if graph.is_constant(node.inputs[0]) or not graph.is_constant(node.inputs[1]):
        raise ModelError(
            f"CAM needs the class weights to be a constant; {node.op_type} {node.name!r} multiplies two computed tensors: {_FIX}"
        )
    try:
        return dense_matrix(NodeRule(node, graph), np.asarray(graph.constants[node.inputs[1]], dtype=np.float32))
    except UnsupportedOpError as exc:
        raise ModelError(f"CAM cannot read the class weights of {node.op_type} {node.name!r}: {exc.detail}: {_FIX}") from None


def _pooled_layout(graph: LayerGraph, pool: Node) -> str:
    """The layout of the map ``pool`` averages over its rows and columns.

    Raises:
        ModelError: its layout is unknown, or the pool reduces other axes.
    """
    layout = feature_layouts(graph).get(pool.inputs[0])
    if layout is None:
        raise ModelError(
            f"CAM reads a map the graph establishes as NCHW or NHWC; the input of {pool.op_type} {pool.name!r} is neither: {_FIX}"
        )
    if pool.op_type.startswith("Global"):
        return layout
    axes = _reduced_axes(graph, pool)
    spatial = {1, 2, 3} - {channel_axis(layout)}
    if axes is None or {a % 4 for a in axes} != spatial:
        raise ModelError(
            f"CAM reads a {layout} map pooled over its rows and columns; {pool.op_type} {pool.name!r} pools axes {axes}: {_FIX}"
        )
    return layout


def _reduced_axes(graph: LayerGraph, node: Node) -> tuple[int, ...] | None:
    """A reduction's axes, from its attribute or (opset 13 ReduceSum, 18 the others) its constant second input."""
    axes = node.attr("axes")
    if axes is None and len(node.inputs) > 1 and graph.is_constant(node.inputs[1]) and node.inputs[1]:
        axes = graph.constants[node.inputs[1]].reshape(-1).tolist()
    return None if axes is None else tuple(int(a) for a in axes)


def _class_maps(graph: LayerGraph, shapes: dict[str, tuple[int, ...]], pooled: str, layout: str) -> tuple[str, np.ndarray]:
    """No linear layer after the pool: (the layer, (K, classes) weights). A 1x1 conv right before
    the pool (through a Transpose) gives its input and weights; otherwise each class is its own
    channel of the pooled map (identity weights)."""
    tensor = pooled
    while tensor in graph.producer and graph.producer[tensor].op_type == "Transpose":
        tensor = graph.producer[tensor].inputs[0]
    conv = graph.producer.get(tensor)
    if conv is not None and conv.op_type == "Conv" and graph.is_constant(conv.inputs[1]):
        w = graph.constants[conv.inputs[1]]
        linear_1x1 = w.ndim == 4 and w.shape[2:] == (1, 1) and conv.attr("group", 1) == 1
        if linear_1x1 and max(conv.attr("strides", [1, 1])) == 1 and not any(conv.attr("pads", [0, 0, 0, 0])):
            return conv.inputs[0], np.ascontiguousarray(w[:, :, 0, 0].T, dtype=np.float32)
    shape = shapes.get(pooled)
    if shape is None or len(shape) != 4:
        raise ModelError(f"CAM cannot tell how many classes the pooled map {pooled!r} has (its shape is unknown): {_FIX}")
    return pooled, np.eye(shape[channel_axis(layout)], dtype=np.float32)
