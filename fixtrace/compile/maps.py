"""The methods ``fixtrace compile`` can write into a model: each turns the one-hot seed of the
explained class into its map, with the same arithmetic as the method's numpy form."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fixtrace.compile.builder import GraphBuilder
from fixtrace.methods.base import Method
from fixtrace.methods.cam import CAM, LayerGradientMethod
from fixtrace.methods.gradient import InputGradient
from fixtrace.methods.resize import spatial_axes
from fixtrace.model.layout import grid


@dataclass(frozen=True)
class MapTensor:
    """A map written into the graph.

    Attributes:
        name: the float32 (N, rows, cols) tensor.
        grid: (rows, cols).
        layer: the layer whose grid the map is on (None: the model input's).
    """

    name: str
    grid: tuple[int, int]
    layer: str | None = None


def _nchw(builder: GraphBuilder, name: str, layout: str) -> str:
    """A rank-4 map of ``layout`` as (N, C, H, W) (``model.layout.to_nchw``)."""
    return name if layout == "NCHW" else builder.op("Transpose", [name], "nchw", perm=[0, 3, 1, 2])


def _weighted_sum(builder: GraphBuilder, weights: str, activations: str) -> str:
    """ReLU(sum_k w_k A_k) of (N, K, h, w) activations: the CAM family's last step."""
    summed = builder.reduce("ReduceSum", builder.op("Mul", [weights, activations], "weighted"), [1], keepdims=False)
    return builder.op("Relu", [summed], "cam")


def input_gradient_map(method: Method, builder: GraphBuilder, one_hot: str) -> MapTensor:
    """Saliency, guided backprop, deconvnet: the max over colours of |d score / d pixel|, (N, H, W)."""
    assert isinstance(method, InputGradient)
    grad = method.plan.emit(builder, builder.reshape_like(one_hot, method.logits))
    magnitude = builder.op("Abs", [grad], "magnitude")
    image = method.graph.image_input
    reduced = builder.reduce("ReduceMax", magnitude, [spatial_axes(method.graph)[0]], keepdims=False)
    return MapTensor(reduced, grid(builder.shape(image.name), image.layout))


def layer_gradient_map(method: Method, builder: GraphBuilder, one_hot: str) -> MapTensor:
    """The Grad-CAM family on its layer's grid, (N, h, w): ReLU(sum_k w_k A_k), the weights from
    d score / d A (``LayerGradientMethod.emit_weights``)."""
    assert isinstance(method, LayerGradientMethod)
    grad = _nchw(builder, method.plan.emit(builder, builder.reshape_like(one_hot, method.logits)), method.layout)
    activations = _nchw(builder, method.layer, method.layout)
    made = _weighted_sum(builder, method.emit_weights(builder, grad, activations), activations)
    return MapTensor(made, grid(builder.shape(method.layer), method.layout), method.layer)


def cam_map(method: Method, builder: GraphBuilder, one_hot: str) -> MapTensor:
    """CAM on the pooled layer's grid, (N, h, w): ReLU(sum_k w_ck A_k), no gradient walk."""
    assert isinstance(method, CAM)
    head = method.head
    activations = _nchw(builder, method.layer, head.layout)
    per_class = np.ascontiguousarray(head.weights.T)  # (classes, K)
    rows, cols = grid(builder.shape(method.layer), head.layout)
    if head.summed:  # the pool sums: each cell counts once (CAM.attributions)
        per_class = per_class * np.float32(rows * cols)
    weights = builder.op("MatMul", [one_hot, builder.const(per_class.astype(np.float32), "cam_weights")], "cam_weights")
    made = _weighted_sum(builder, builder.unsqueeze(weights, [2, 3]), activations)
    return MapTensor(made, (rows, cols), method.layer)


#: Method name -> its map's ONNX form.
COMPILED: dict[str, Callable[[Method, GraphBuilder, str], MapTensor]] = {
    "gradcam": layer_gradient_map,
    "cam": cam_map,
    "saliency": input_gradient_map,
    "guided-backprop": input_gradient_map,
    "deconvnet": input_gradient_map,
    "gradcam++": layer_gradient_map,
    "layercam": layer_gradient_map,
    "xgradcam": layer_gradient_map,
}
