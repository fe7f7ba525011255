"""Class activation maps: CAM, Grad-CAM and Guided Grad-CAM, and the base of the Grad-CAM family
(``LayerGradientMethod``: Grad-CAM++, LayerCAM and XGrad-CAM give only their weights)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from fixtrace.errors import FixtraceError, ModelError, UnsupportedOpError
from fixtrace.methods.base import Maps, Method, Parameter, register
from fixtrace.methods.gradient import GuidedBackprop, gradient_maps, gradient_plan
from fixtrace.methods.heads import cam_head
from fixtrace.methods.resize import spatial_axes, upsample
from fixtrace.model.layer_graph import LayerGraph
from fixtrace.model.layout import feature_layouts, grid, to_nchw
from fixtrace.render.display import SIGNED_GRADIENT_DISPLAY
from fixtrace.runtime.run import Run
from fixtrace.runtime.tensors import Tensors

if TYPE_CHECKING:
    from fixtrace.compile.builder import GraphBuilder

#: The ``layer`` option of the methods that read one layer.
LAYER = Parameter(None, "the feature map read (default: the last spatial map; see `fixtrace layers`)")


def last_spatial_layer(graph: LayerGraph, shapes: dict[str, tuple[int, ...]]) -> str:
    """The last map the graph establishes as NCHW or NHWC (see ``model.layout``) with rows and
    columns > 1 (Grad-CAM's default layer): the same semantic layer whichever layout the
    exporter kept between layers (jax2onnx's channels-last ReLU outputs included).

    Raises:
        ModelError: there is none.
    """
    layouts = feature_layouts(graph)
    order = {n.outputs[0]: n.order for n in graph.nodes if n.outputs and n.outputs[0] in layouts}
    spatial = [t for t in order if len(shapes.get(t, ())) == 4 and min(grid(shapes[t], layouts[t])) > 1]
    if not spatial:
        raise ModelError("no NCHW or NHWC feature map with rows and columns > 1 in the model: Grad-CAM has no layer to read")
    return max(spatial, key=order.__getitem__)


def layer_on_path(method: Method, layer: str) -> str:
    """The layout of ``layer``, a computed rank-4 map the graph establishes as NCHW or NHWC.

    Raises:
        FixtraceError: naming the layer and where to look.
    """
    if layer not in method.graph.producer:
        raise FixtraceError(
            f"layer {layer!r} is not on the way from the input to the logits; `fixtrace layers MODEL` lists the layers"
        )
    if layer in method.shapes and len(method.shapes[layer]) != 4:
        raise FixtraceError(f"layer {layer!r} has shape {method.shapes[layer]}; {method.name} reads a rank-4 feature map")
    layout = feature_layouts(method.graph).get(layer)
    if layout is None:
        raise FixtraceError(
            f"layer {layer!r} has a layout the graph does not establish (neither NCHW nor NHWC): {method.name} reads "
            "feature maps; pick a conv's, pool's or activation's output (`fixtrace layers MODEL` lists the layers)"
        )
    return layout


class LayerMethod(Method):
    """A method that reads one layer (NCHW or NHWC) and upsamples its (N, h, w) map to the input."""

    coarse_maps = True
    parameters = {"layer": LAYER}

    def maps(self, tensors: Tensors, targets: list[int]) -> np.ndarray:
        return upsample(self.coarse(tensors, targets), self.input_grid(tensors), self.upsample_mode)


class LayerGradientMethod(LayerMethod):
    """The Grad-CAM family: a layer's activations A (N, K, h, w) weighted by the gradient of the
    class score on them, ReLU(sum_k w_k A_k). Each variant gives only its ``weights``; the layer,
    the walk down to it and both layouts are shared here.

    Raises:
        FixtraceError: ``layer`` is not a rank-4 tensor on the way to the logits.
    """

    onnx_backward = True

    def __init__(self, graph: LayerGraph, logits: str, **options: Any) -> None:
        super().__init__(graph, logits, **options)
        self.layer: str = self.params["layer"] or last_spatial_layer(graph, self.shapes)
        self.layout = layer_on_path(self, self.layer)
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

    def layer_gradients(self, tensors: Tensors, targets: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """(d score / d A, A), both (N, K, h, w) whatever the layer's layout."""
        grads = to_nchw(self.plan.run(self.seed(tensors, targets), tensors)[self.layer], self.layout)
        return grads, to_nchw(tensors.value(self.layer), self.layout)

    def weights(self, grads: np.ndarray, activations: np.ndarray) -> np.ndarray:
        """The weight of each activation, broadcastable to (N, K, h, w)."""
        raise NotImplementedError

    def emit_weights(self, builder: GraphBuilder, grads: str, activations: str) -> str:
        """The ONNX form of ``weights`` (``fixtrace compile``), from the names of (N, K, h, w) tensors."""
        raise NotImplementedError

    def attributions(self, tensors: Tensors, targets: list[int]) -> np.ndarray:
        """(N, h, w) maps on the layer's grid, ReLU applied."""
        grads, activations = self.layer_gradients(tensors, targets)
        return np.maximum((self.weights(grads, activations) * activations).sum(axis=1), 0).astype(np.float32)

    def coarse(self, tensors: Tensors, targets: list[int]) -> np.ndarray:
        return self.attributions(tensors, targets)

    def settings(self) -> dict[str, Any]:
        return {"layer": self.layer}


@register
class GradCAM(LayerGradientMethod):
    """Selvaraju et al. 2017: ReLU(sum_k alpha_k A_k), alpha_k the spatial mean of d score / d A_k.

    Raises:
        FixtraceError: ``layer`` is not a rank-4 tensor on the way to the logits.
    """

    name = "gradcam"
    summary = "ReLU(sum_k mean(d score / d A_k) A_k) on a layer (Selvaraju et al. 2017)"
    rank = 21

    def weights(self, grads: np.ndarray, activations: np.ndarray) -> np.ndarray:
        return grads.mean(axis=(2, 3), keepdims=True)

    def emit_weights(self, builder, grads, activations):
        return builder.reduce("ReduceMean", grads, [2, 3])


@register
class CAM(LayerMethod):
    """Zhou et al. 2016, for conv -> global average pool -> fully connected heads:
    sum_k w_ck A_k with A the pooled map and w the classifier's weights (see ``methods.heads``
    for the heads recognised).

    Raises:
        ModelError: the logits are not a linear read of a global average pool.
    """

    name = "cam"
    summary = "sum_k w_ck A_k for conv -> global average pool -> fully connected heads (Zhou et al. 2016)"
    parameters = {}
    rank = 20

    def __init__(self, graph: LayerGraph, logits: str, **options: Any) -> None:
        super().__init__(graph, logits, **options)
        self.head = cam_head(graph, logits, self.shapes)
        self.layer = self.head.layer
        self.needs = {self.layer}
        self.touched = {self.layer}

    def attributions(self, tensors: Tensors, targets: list[int]) -> np.ndarray:
        """(N, h, w) class activation maps on the pooled layer's grid."""
        a = to_nchw(tensors.value(self.layer), self.head.layout)
        w = self.head.weights[:, targets].T  # (N, K)
        if self.head.summed:
            w = w * (a.shape[2] * a.shape[3])
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
    display = SIGNED_GRADIENT_DISPLAY

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

    def explain(self, run: Run, targets: list[int]) -> Maps:
        return gradient_maps(self, self.attributions(run.tensors, targets))

    def settings(self) -> dict[str, Any]:
        return {"layer": self.layer}
