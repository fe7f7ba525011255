"""Values the session did not keep, recomputed at the few positions a rule reads.

Exposing an intermediate costs onnxruntime a layout conversion of the whole tensor (its CPU
convs run in a blocked layout). A depthwise conv reads its input only in its fixations'
windows, one channel each, to locate the argmax; when that input is Relu/Clip(Conv(x)) with
x kept anyway, the values are recomputed from x instead (MobileNetV2: 46 tensors kept instead
of 63, forward 1.4x a plain run instead of 1.85x).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from fixtrace.kernels.shared.conv import conv_geometry
from fixtrace.model.layer_graph import LayerGraph, Node
from fixtrace.ops.activation import clip_bounds
from fixtrace.ops.attributes import attribute
from fixtrace.ops.geometry import window

if TYPE_CHECKING:
    from fixtrace.runtime.tensors import Tensors


@dataclass(frozen=True)
class ConvRecipe:
    """How to recompute a tensor that is Conv(source), optionally followed by Relu or Clip.

    Attributes:
        conv: the Conv node.
        weights: float32 weights, channels last (M, KH, KW, C // groups).
        bias: float32 bias (zeros when absent).
        low, high: clip bounds (-inf, inf without an activation).
    """

    conv: Node
    weights: np.ndarray
    bias: np.ndarray
    low: float
    high: float
    #: ``weights`` flattened (set after init).
    flat_weights: np.ndarray = field(init=False, repr=False)
    #: ``conv_geometry`` per (source shape, output shape), filled on use.
    geometries: dict[tuple[tuple[int, ...], tuple[int, ...]], tuple[int, ...]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "flat_weights", self.weights.reshape(-1))

    @property
    def source(self) -> str:
        return self.conv.inputs[0]

    def arguments(self, tensors: Tensors, out_shape: tuple[int, ...]) -> tuple:
        """The producing conv's arguments for the recompute kernel, in the backend's memory.

        Args:
            tensors: the run's tensors (holds the backend and the source's value).
            out_shape: the recomputed tensor's shape.

        Returns:
            (source flat, weights, bias, ``conv_geometry``, low, high).
        """
        in_shape = tensors.shape(self.source)
        g = self.geometries.get((in_shape, out_shape))
        if g is None:
            m, kh, kw, c_group = self.weights.shape
            win = window(self.conv, (kh, kw), (in_shape[2], in_shape[3]), (out_shape[2], out_shape[3]))
            g = conv_geometry(
                in_shape,
                (m, c_group, kh, kw),
                (out_shape[2], out_shape[3]),
                int(attribute(self.conv, "group")),
                win.strides,
                win.pads,
                win.dilations,
            )
            self.geometries[(in_shape, out_shape)] = g
        backend = tensors.backend
        return (
            tensors.flat(self.source),
            backend.constant(self.flat_weights),
            backend.constant(self.bias),
            g,
            self.low,
            self.high,
        )


def find_recipe(graph: LayerGraph, tensor: str) -> ConvRecipe | None:
    """A recipe for ``tensor`` when it is Conv(x) or Relu/Clip(Conv(x)) with constant weights, else None."""
    node = graph.producer.get(tensor)
    low, high = -np.inf, np.inf
    if node is not None and node.op_type in ("Relu", "Clip"):
        bounds = clip_bounds(graph, node)
        if bounds is None:
            return None
        low, high = bounds
        node = graph.producer.get(node.inputs[0])
    if node is None or node.op_type != "Conv" or not graph.is_constant(node.inputs[1]):
        return None
    weights = graph.constants[node.inputs[1]]
    if weights.ndim != 4:
        return None
    has_bias = len(node.inputs) > 2 and node.inputs[2]
    if has_bias and not graph.is_constant(node.inputs[2]):
        return None
    bias = graph.constants[node.inputs[2]] if has_bias else np.zeros(weights.shape[0])
    return ConvRecipe(
        node,
        np.ascontiguousarray(weights.transpose(0, 2, 3, 1), dtype=np.float32),
        np.ascontiguousarray(bias, dtype=np.float32),
        low,
        high,
    )
