"""Gradual Extrapolation (Szandala, IEEE Access 2021): sharpen a coarse map with the activations
of the layers where the network down-samples."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from fixtrace import ops
from fixtrace.errors import ModelError
from fixtrace.methods.base import Maps, Method
from fixtrace.methods.resize import upsample
from fixtrace.model.layer_graph import LayerGraph
from fixtrace.model.layout import channel_axis, feature_layouts
from fixtrace.runtime.run import Run
from fixtrace.runtime.tensors import Tensors


def _activated(graph: LayerGraph, tensor: str) -> str:
    """``tensor`` followed through single-consumer BatchNorm / ReLU-like nodes and Transposes
    (jax2onnx transposes a conv's output back to NHWC before its ReLU)."""
    while len(graph.consumers.get(tensor, [])) == 1 and any(
        ops.has_trait(graph.consumers[tensor][0], t) for t in ("activation", "permute")
    ):
        tensor = graph.consumers[tensor][0].outputs[0]
    return tensor


def _source(graph: LayerGraph, tensor: str) -> str:
    """``tensor`` followed back through Transposes and element-wise ops of one computed input
    (the image input however it is laid out or normalised inside the graph)."""
    while tensor in graph.producer:
        node = graph.producer[tensor]
        computed = [t for t in node.inputs if not graph.is_constant(t)]
        elementwise = ops.has_trait(node, "spatial") and not ops.has_trait(node, "channels_first")
        if len(computed) != 1 or not (ops.has_trait(node, "permute") or elementwise):
            return tensor
        tensor = computed[0]
    return tensor


class GradualExtrapolation:
    """E_0 = the input of the first down-sampling layer (a strided conv or pool), E_1..E_n = the
    outputs of every down-sampling layer. From the deepest E_j larger than the map up to E_0:
    resize the map to E_j bilinearly and multiply it by E_j's channel sum (scaled by its max;
    positive parts only, see ``energy``). Then z-score, clip to [-1, 1] and scale to [0, 1].

    A strided conv's output is taken after its own BatchNorm and ReLU (when they are its only
    consumers), so that every E_j is an activation, as the max-pool outputs of VGG are.

    Args:
        graph: the layer graph.
        shapes: tensor shapes at the model's input size.

    Raises:
        ModelError: the model never down-samples.
    """

    def __init__(self, graph: LayerGraph, shapes: dict[str, tuple[int, ...]]) -> None:
        steps = [
            n
            for n in graph.nodes
            if ops.has_trait(n, "downsampling") and max(n.attr("strides", [1, 1])) > 1 and len(shapes.get(n.outputs[0], ())) == 4
        ]
        if not steps:
            raise ModelError("the model has no strided conv or pool: Gradual Extrapolation has no layers to use")
        candidates = [steps[0].inputs[0]] + [_activated(graph, n.outputs[0]) for n in steps]
        # The image itself is not an activation (normalised pixels can be negative): never an E_j.
        layouts = feature_layouts(graph)
        self.layouts = {t: layouts[t] for t in candidates if _source(graph, t) != graph.image_input.name and t in layouts}
        self.layers = list(self.layouts)
        if not self.layers:
            raise ModelError(
                "no down-sampling layer of the model gives a map the graph establishes as NCHW or NHWC: "
                "Gradual Extrapolation has no layers to use"
            )
        self.needs = set(self.layers)

    def apply(self, maps: np.ndarray, tensors: Tensors) -> np.ndarray:
        """Sharpen (N, h, w) maps; returns (N, H, W) in [0, 1] at E_0's size.

        Args:
            maps: coarse maps on any grid no larger than E_0's.
            tensors: the run's values (at least ``needs``).
        """
        sharp = maps.astype(np.float32)
        for name in reversed(self.layers):
            energy = self.energy(tensors.value(name), self.layouts[name])
            if energy.shape[1] * energy.shape[2] <= sharp.shape[1] * sharp.shape[2]:
                continue
            peak = energy.max(axis=(1, 2), keepdims=True)
            usable = np.isfinite(peak) & (peak > 0)  # per photo: an all-zero E_j would erase the map
            sharp = upsample(sharp, energy.shape[1:])
            sharp = np.where(usable, sharp * energy / np.where(usable, peak, 1.0), sharp).astype(np.float32)
        mean = sharp.mean(axis=(1, 2), keepdims=True)
        std = np.maximum(sharp.std(axis=(1, 2), keepdims=True), 1e-12)
        z = np.clip((sharp - mean) / std, -1.0, 1.0)
        low, high = z.min(axis=(1, 2), keepdims=True), z.max(axis=(1, 2), keepdims=True)
        return ((z - low) / np.maximum(high - low, 1e-12)).astype(np.float32)

    @staticmethod
    def energy(value: np.ndarray, layout: str) -> np.ndarray:
        """(N, H_j, W_j): E_j's channel sum of its positive parts.

        The paper's E_j are ReLU outputs (VGG's pools), whose channel sums are never negative. A
        map read before its ReLU (a shortcut conv's BatchNorm output, as Keras Xception-style
        blocks add them) can have negative sums everywhere: multiplied in, they flip or, scaled by
        a negative max, wipe out the map. Summing only the positive parts is the paper's sum on
        ReLU maps and keeps where such a map is active; an E_j with no positive part at all is
        skipped for that photo (``apply``) instead of zeroing its map.
        """
        return np.maximum(value, 0).sum(axis=channel_axis(layout), dtype=np.float32)


class Extrapolated(Method):
    """Any method with coarse maps, sharpened by Gradual Extrapolation (``name:ge``).

    The wrapped method runs as usual (fixations keep their points and per-layer fixations);
    its coarse maps, sharpened, become the maps, and the heat map is resampled from them.

    Args:
        inner: the prepared method.

    Raises:
        OptionError: the method has no coarse maps.
        ModelError: the model never down-samples, or has no spatial map.
    """

    coarse_maps = False

    def __init__(self, inner: Method) -> None:
        super().__init__(inner.graph, inner.logits, shapes=inner.shapes, upsample_mode=inner.upsample_mode)
        inner.prepare_coarse()
        self.inner = inner
        self.name = f"{inner.name}:ge"  # type: ignore[misc]  # an instance's name: the wrapped method's
        self.extrapolation = GradualExtrapolation(inner.graph, inner.shapes)
        self.needs = inner.needs | self.extrapolation.needs
        self.touched = set(inner.touched)
        self.recipes = inner.recipes

    def check(self, tensors: Tensors) -> None:
        self.inner.check(tensors)

    def explain(self, run: Run, targets: list[int]) -> Maps:
        made = self.inner.explain(run, targets)
        assert made.coarse is not None, f"{self.inner.name} gave no coarse maps"
        sharp = upsample(self.extrapolation.apply(made.coarse, run.tensors), run.grid)
        return replace(made, maps=sharp, heat_from_points=False)

    def settings(self) -> dict[str, Any]:
        return self.inner.settings()
