"""Class activation maps: CAM, Grad-CAM and Guided Grad-CAM."""

from __future__ import annotations

from typing import Any

import numpy as np

from fixtrace import ops
from fixtrace.errors import FixtraceError, ModelError, UnsupportedOpError
from fixtrace.methods.base import Method, Parameter, register
from fixtrace.methods.gradient import GuidedBackprop, gradient_plan
from fixtrace.methods.resize import spatial_axes, upsample
from fixtrace.model.layer_graph import LayerGraph, Node
from fixtrace.model.layout import feature_layouts
from fixtrace.runtime.tensors import Tensors

#: The ``layer`` option of the methods that read one layer.
LAYER = Parameter(None, "the (N, C, H, W) tensor read (default: the last spatial map; see `fixtrace layers`)")


def last_spatial_layer(graph: LayerGraph, shapes: dict[str, tuple[int, ...]]) -> str:
    """The last map the graph establishes as NCHW (see ``model.layout``) with rows and columns > 1
    (Grad-CAM's default layer). Channels-last maps between layers (jax2onnx graphs) are never
    taken: the conv outputs around them are.

    Raises:
        ModelError: there is none.
    """
    layouts = feature_layouts(graph)
    order = {n.outputs[0]: n.order for n in graph.nodes if n.outputs and layouts.get(n.outputs[0]) == "NCHW"}
    spatial = [t for t in order if len(shapes.get(t, ())) == 4 and shapes[t][2] > 1 and shapes[t][3] > 1]
    if not spatial:
        raise ModelError("no NCHW feature map with rows and columns > 1 in the model: Grad-CAM has no layer to read")
    return max(spatial, key=order.__getitem__)


def layer_on_path(method: Method, layer: str) -> None:
    """Refuse a layer that is not a computed (N, C, H, W) tensor, saying where to look.

    Raises:
        FixtraceError: naming the layer.
    """
    if layer not in method.graph.producer:
        raise FixtraceError(
            f"layer {layer!r} is not on the way from the input to the logits; `fixtrace layers MODEL` lists the layers"
        )
    if layer in method.shapes and len(method.shapes[layer]) != 4:
        raise FixtraceError(f"layer {layer!r} has shape {method.shapes[layer]}; {method.name} reads an (N, C, H, W) map")
    layout = feature_layouts(method.graph).get(layer)
    if layout != "NCHW":
        found = f"is {layout} (channels last)" if layout else "has a layout the graph does not establish"
        raise FixtraceError(
            f"layer {layer!r} {found}: {method.name} reads (N, C, H, W) maps; pick a conv's or pool's output "
            "(`fixtrace layers MODEL` lists the layers)"
        )


class LayerMethod(Method):
    """A method that reads one (N, C, H, W) layer and upsamples its (N, h, w) map to the input."""

    coarse_maps = True
    parameters = {"layer": LAYER}

    def maps(self, tensors: Tensors, targets: list[int]) -> np.ndarray:
        return upsample(self.coarse(tensors, targets), self.input_grid(tensors), self.upsample_mode)


@register
class GradCAM(LayerMethod):
    """Selvaraju et al. 2017: ReLU(sum_k alpha_k A_k), alpha_k the spatial mean of d score / d A_k.

    Raises:
        FixtraceError: ``layer`` is not a rank-4 tensor on the way to the logits.
    """

    name = "gradcam"
    summary = "ReLU(sum_k mean(d score / d A_k) A_k) on a layer (Selvaraju et al. 2017)"
    rank = 21

    def __init__(self, graph: LayerGraph, logits: str, **options: Any) -> None:
        super().__init__(graph, logits, **options)
        self.layer: str = self.params["layer"] or last_spatial_layer(graph, self.shapes)
        layer_on_path(self, self.layer)
        try:
            self.plan = gradient_plan(self, "plain", bottom=self.layer)
        except UnsupportedOpError:
            raise
        except ModelError:
            raise FixtraceError(
                f"layer {self.layer!r} is not on the way from the input to the logits; `fixtrace layers MODEL` lists the layers"
            ) from None
        self.needs.add(self.layer)
        self.touched.add(self.layer)

    def attributions(self, tensors: Tensors, targets: list[int]) -> np.ndarray:
        """(N, h, w) maps on the layer's grid, ReLU applied."""
        grads = self.plan.run(self.seed(tensors, targets), tensors)[self.layer]
        activations = tensors.value(self.layer)
        alpha = grads.mean(axis=(2, 3), keepdims=True)
        return np.maximum((alpha * activations).sum(axis=1), 0).astype(np.float32)

    def coarse(self, tensors: Tensors, targets: list[int]) -> np.ndarray:
        return self.attributions(tensors, targets)

    def settings(self) -> dict[str, Any]:
        return {"layer": self.layer}


@register
class CAM(LayerMethod):
    """Zhou et al. 2016, for conv -> global average pool -> fully connected heads:
    sum_k w_ck A_k with A the pooled map and w the classifier's weights.

    Raises:
        ModelError: the logits are not a fully connected layer over a global average pool.
    """

    name = "cam"
    summary = "sum_k w_ck A_k for conv -> global average pool -> fully connected heads (Zhou et al. 2016)"
    parameters = {}
    rank = 20

    def __init__(self, graph: LayerGraph, logits: str, **options: Any) -> None:
        super().__init__(graph, logits, **options)
        node = graph.producer.get(logits)
        if node is None or node.op_type not in ("Gemm", "MatMul") or not graph.is_constant(node.inputs[1]):
            raise ModelError(
                f"CAM needs the logits to be a fully connected layer; they come from "
                f"{node.op_type if node else 'nothing'}: use --method gradcam"
            )
        w = graph.constants[node.inputs[1]].astype(np.float32)
        self.weights = w.T if node.attr("transB", 0) else w  # (K, classes)
        tensor = node.inputs[0]
        while tensor in graph.producer and ops.has_trait(graph.producer[tensor], "reindex"):
            tensor = graph.producer[tensor].inputs[0]
        pool = graph.producer.get(tensor)
        if pool is None or pool.op_type not in ("GlobalAveragePool", "ReduceMean"):
            raise ModelError(
                f"CAM needs a global average pool before the fully connected layer; found "
                f"{pool.op_type if pool else 'the input'}: use --method gradcam"
            )
        if pool.op_type == "ReduceMean" and _reduced_axes(graph, pool) not in ((2, 3), (-2, -1)):
            raise ModelError(
                f"CAM reads an (N, C, H, W) map pooled over its rows and columns; this model's ReduceMean {pool.name!r} "
                f"pools axes {_reduced_axes(graph, pool)}: use --method gradcam"
            )
        self.layer = pool.inputs[0]
        self.needs = {self.layer}
        self.touched = {self.layer}

    def attributions(self, tensors: Tensors, targets: list[int]) -> np.ndarray:
        """(N, h, w) class activation maps on the pooled layer's grid."""
        a = tensors.value(self.layer)
        w = self.weights[:, targets].T  # (N, K)
        return np.einsum("nk,nkhw->nhw", w, a).astype(np.float32)

    def coarse(self, tensors: Tensors, targets: list[int]) -> np.ndarray:
        return np.maximum(self.attributions(tensors, targets), 0)

    def settings(self) -> dict[str, Any]:
        return {"layer": self.layer}


@register
class GuidedGradCAM(Method):
    """Guided backprop times Grad-CAM upsampled to the input (Selvaraju et al. 2017)."""

    name = "guided-gradcam"
    summary = "guided backprop x upsampled Grad-CAM (Selvaraju et al. 2017)"
    parameters = {"layer": LAYER}
    rank = 22

    def __init__(self, graph: LayerGraph, logits: str, **options: Any) -> None:
        super().__init__(graph, logits, **options)
        self.gradcam = GradCAM(graph, logits, **options)
        self.guided = GuidedBackprop(graph, logits, shapes=self.shapes)
        self.layer = self.gradcam.layer
        self.needs = self.gradcam.needs | self.guided.needs
        self.touched = self.gradcam.touched | self.guided.touched

    def attributions(self, tensors: Tensors, targets: list[int]) -> np.ndarray:
        """(N, C, H, W): the guided gradient weighted by the upsampled Grad-CAM."""
        cam = self.gradcam.maps(tensors, targets)
        guided = self.guided.attributions(tensors, targets)
        return (guided * np.expand_dims(cam, spatial_axes(self.graph)[0])).astype(np.float32)

    def maps(self, tensors: Tensors, targets: list[int]) -> np.ndarray:
        return np.abs(self.attributions(tensors, targets)).max(axis=spatial_axes(self.graph)[0])

    def settings(self) -> dict[str, Any]:
        return {"layer": self.layer}


def _reduced_axes(graph: LayerGraph, node: Node) -> tuple[int, ...] | None:
    """A ReduceMean's axes, from its attribute or (opset 18) its constant second input."""
    axes = node.attr("axes")
    if axes is None and len(node.inputs) > 1 and graph.is_constant(node.inputs[1]):
        axes = graph.constants[node.inputs[1]].reshape(-1).tolist()
    return None if axes is None else tuple(int(a) for a in axes)
