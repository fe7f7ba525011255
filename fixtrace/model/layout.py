"""Which tensors of a graph are (N, C, H, W) maps and which are (N, H, W, C), established from the
graph instead of assumed: exporters such as jax2onnx keep maps channels-last between layers and
transpose around every conv, and a layer method reading such a map as NCHW draws stripes."""

from __future__ import annotations

import numpy as np

from fixtrace import ops
from fixtrace.model.layer_graph import LayerGraph
from fixtrace.ops.attributes import attribute

#: The layouts a rank-4 map can be established to have.
LAYOUTS = ("NCHW", "NHWC")
_REDUCTIONS = ("ReduceMean", "ReduceSum", "ReduceMax", "ReduceL2")


def feature_layouts(graph: LayerGraph) -> dict[str, str]:
    """Tensor name -> ``"NCHW"`` or ``"NHWC"`` for every map whose layout the graph establishes.

    Established: the image input (its detected layout); the output of an op ONNX defines as
    channels first (Conv, pools, BatchNorm: trait ``channels_first``); a Transpose of an
    established map whose permutation gives a layout again; a layout-keeping op (trait
    ``spatial``: activations, Add, Mul, Concat, ...) whose computed inputs all share one layout;
    a reduction that keeps its dims (a squeeze-and-excitation gate's pool). Anything else (reshapes, other transposes, mixed inputs) is left out: unknown.
    """
    layouts = {graph.image_input.name: graph.image_input.layout}
    for node in graph.nodes:
        if not node.outputs or not node.outputs[0]:
            continue
        layout = _output_layout(graph, node, layouts)
        if layout is not None:
            layouts[node.outputs[0]] = layout
    return layouts


def _output_layout(graph: LayerGraph, node, layouts: dict[str, str]) -> str | None:
    if ops.has_trait(node, "channels_first"):
        return "NCHW"
    if node.op_type == "Transpose":
        source, perm = layouts.get(node.inputs[0]), node.attr("perm")
        if source is None or perm is None or sorted(perm) != [0, 1, 2, 3]:
            return None
        permuted = "".join(source[p] for p in perm)
        return permuted if permuted in LAYOUTS else None
    if node.op_type in _REDUCTIONS:
        return layouts.get(node.inputs[0]) if attribute(node, "keepdims", graph.opset) else None
    if ops.has_trait(node, "spatial"):
        found = {layouts.get(t) for t in node.inputs if t and not graph.is_constant(t)}
        if len(found) == 1 and None not in found:
            return found.pop()
    return None


def channel_axis(layout: str) -> int:
    """The channel axis of a rank-4 map of ``layout``."""
    return 1 if layout == "NCHW" else 3


def grid(shape: tuple[int, ...], layout: str) -> tuple[int, int]:
    """(rows, cols) of a rank-4 map of ``layout``."""
    return (shape[2], shape[3]) if layout == "NCHW" else (shape[1], shape[2])


def to_nchw(value: np.ndarray, layout: str) -> np.ndarray:
    """A rank-4 map of ``layout`` as (N, C, H, W) (a view when it is one already)."""
    return value if layout == "NCHW" else value.transpose(0, 3, 1, 2)
