"""Class activation maps: CAM, Grad-CAM and Guided Grad-CAM."""

from __future__ import annotations

import numpy as np

from fixtrace.errors import FixtraceError, ModelError
from fixtrace.methods.base import MapMethod, upsample
from fixtrace.methods.gradient import GuidedBackprop
from fixtrace.model.layer_graph import LayerGraph

#: Ops that keep a map's NCHW layout: where a layer method may read.
_SPATIAL_OPS = {"Conv", "Relu", "Clip", "LeakyRelu", "BatchNormalization", "Add", "Sum", "Mul", "MaxPool", "AveragePool",
                "Concat", "HardSwish", "Sigmoid"}
_REINDEX = {"Flatten", "Reshape", "Squeeze", "Unsqueeze", "Identity", "Dropout"}


def last_spatial_layer(graph: LayerGraph, shapes: dict[str, tuple[int, ...]]) -> str:
    """The last NCHW map with rows and columns > 1 in the graph (Grad-CAM's default layer).

    Raises:
        ModelError: there is none.
    """
    order = {n.outputs[0]: n.order for n in graph.nodes if n.op_type in _SPATIAL_OPS}
    spatial = [t for t in order if len(shapes.get(t, ())) == 4 and shapes[t][2] > 1 and shapes[t][3] > 1]
    if not spatial:
        raise ModelError("no NCHW feature map with rows and columns > 1 in the model: Grad-CAM has no layer to read")
    return max(spatial, key=order.__getitem__)


class GradCAM(MapMethod):
    """Selvaraju et al. 2017: ReLU(sum_k alpha_k A_k), alpha_k the spatial mean of d score / d A_k.

    Args (see MapMethod):
        layer: an NCHW tensor (default: the last spatial one, see ``last_spatial_layer``).

    Raises:
        FixtraceError: ``layer`` is not a rank-4 tensor on the way to the logits.
    """

    name = "gradcam"
    coarse_maps = True

    def __init__(self, graph, logits, **options):
        super().__init__(graph, logits, **options)
        shapes = self.shapes
        self.layer = self.layer or last_spatial_layer(graph, shapes)
        try:
            self.plan = self.gradient_plan("plain", bottom=self.layer)
        except ModelError:
            raise FixtraceError(f"layer {self.layer!r} is not on the way from the input to the logits; "
                                f"`fixtrace layers MODEL` lists the layers") from None
        if self.layer in shapes and len(shapes[self.layer]) != 4:
            raise FixtraceError(f"layer {self.layer!r} has shape {shapes[self.layer]}; Grad-CAM reads an (N, C, H, W) map")
        self.needs.add(self.layer)
        self.touched.add(self.layer)

    def attributions(self, tensors, targets):
        """(N, h, w) maps on the layer's grid, ReLU applied."""
        grads = self.plan.run(self.seed(tensors, targets), tensors)[self.layer]
        activations = tensors.value(self.layer)
        alpha = grads.mean(axis=(2, 3), keepdims=True)
        return np.maximum((alpha * activations).sum(axis=1), 0).astype(np.float32)

    def coarse(self, tensors, targets):
        return self.attributions(tensors, targets)

    def maps(self, tensors, targets):
        return upsample(self.attributions(tensors, targets), _input_hw(self, tensors), self.upsample_mode)


class CAM(MapMethod):
    """Zhou et al. 2016, for conv -> global average pool -> fully connected heads:
    sum_k w_ck A_k with A the pooled map and w the classifier's weights.

    Raises:
        ModelError: the logits are not a fully connected layer over a global average pool.
    """

    name = "cam"
    coarse_maps = True

    def __init__(self, graph, logits, **options):
        super().__init__(graph, logits, **options)
        node = graph.producer.get(logits)
        if node is None or node.op_type not in ("Gemm", "MatMul") or not graph.is_constant(node.inputs[1]):
            raise ModelError(f"CAM needs the logits to be a fully connected layer; they come from "
                             f"{node.op_type if node else 'nothing'}: use --method gradcam")
        w = graph.constants[node.inputs[1]].astype(np.float32)
        self.weights = w.T if node.attr("transB", 0) else w  # (K, classes)
        tensor = node.inputs[0]
        while tensor in graph.producer and graph.producer[tensor].op_type in _REINDEX:
            tensor = graph.producer[tensor].inputs[0]
        pool = graph.producer.get(tensor)
        if pool is None or pool.op_type not in ("GlobalAveragePool", "ReduceMean"):
            raise ModelError(f"CAM needs a global average pool before the fully connected layer; found "
                             f"{pool.op_type if pool else 'the input'}: use --method gradcam")
        self.layer = pool.inputs[0]
        self.needs = {self.layer}
        self.touched = {self.layer}

    def attributions(self, tensors, targets):
        """(N, h, w) class activation maps on the pooled layer's grid."""
        a = tensors.value(self.layer)
        w = self.weights[:, targets].T  # (N, K)
        return np.einsum("nk,nkhw->nhw", w, a).astype(np.float32)

    def coarse(self, tensors, targets):
        return np.maximum(self.attributions(tensors, targets), 0)

    def maps(self, tensors, targets):
        return upsample(self.coarse(tensors, targets), _input_hw(self, tensors), self.upsample_mode)


class GuidedGradCAM(MapMethod):
    """Guided backprop times Grad-CAM upsampled to the input (Selvaraju et al. 2017)."""

    name = "guided-gradcam"

    def __init__(self, graph, logits, **options):
        super().__init__(graph, logits, **options)
        self.gradcam = GradCAM(graph, logits, **options)
        self.guided = GuidedBackprop(graph, logits)
        self.layer = self.gradcam.layer
        self.needs = self.gradcam.needs | self.guided.needs
        self.touched = self.gradcam.touched | self.guided.touched

    def attributions(self, tensors, targets):
        """(N, C, H, W): the guided gradient weighted by the upsampled Grad-CAM."""
        cam = self.gradcam.maps(tensors, targets)
        guided = self.guided.attributions(tensors, targets)
        channel = 1 if self.graph.image_input.layout == "NCHW" else 3
        return (guided * np.expand_dims(cam, channel)).astype(np.float32)

    def maps(self, tensors, targets):
        channel = 1 if self.graph.image_input.layout == "NCHW" else 3
        return np.abs(self.attributions(tensors, targets)).max(axis=channel)


def _input_hw(method: MapMethod, tensors) -> tuple[int, int]:
    shape = tensors.shape(method.graph.image_input.name)
    return (shape[2], shape[3]) if method.graph.image_input.layout == "NCHW" else (shape[1], shape[2])
