"""Score-CAM (Wang et al. 2020) as pytorch-grad-cam computes it: a layer's channels, as masks of
the input, weighted by the class score they keep."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from fixtrace.errors import FixtraceError
from fixtrace.methods.base import Maps, Method, Parameter, register
from fixtrace.methods.cam import LAYER, last_spatial_layer, layer_on_path
from fixtrace.methods.perturb import masked, spans, target_scores
from fixtrace.methods.resize import upsample
from fixtrace.model.layer_graph import LayerGraph
from fixtrace.model.layout import to_nchw
from fixtrace.runtime.run import Run


def upsample_corners(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(M, h, w) maps resized bilinearly to (M, H, W) with corners aligned (torch's
    ``UpsamplingBilinear2d``, i.e. ``align_corners=True``: what pytorch-grad-cam's Score-CAM uses)."""
    out = maps.astype(np.float32)
    for axis, target in ((1, size[0]), (2, size[1])):
        source = out.shape[axis]
        pos = np.arange(target) * ((source - 1) / (target - 1) if target > 1 else 0.0)
        lo = np.minimum(np.floor(pos).astype(np.int64), source - 1)
        hi = np.minimum(lo + 1, source - 1)
        shape = [1, 1, 1]
        shape[axis] = target
        frac = (pos - lo).astype(np.float32).reshape(shape)
        out = np.take(out, lo, axis=axis) * (1 - frac) + np.take(out, hi, axis=axis) * frac
    return out


def unit_range(maps: np.ndarray) -> np.ndarray:
    """(M, H, W) maps each scaled to [0, 1] by its min and max; a constant map becomes 0."""
    low = maps.min(axis=(1, 2), keepdims=True)
    span = maps.max(axis=(1, 2), keepdims=True) - low
    return np.where(span > 0, (maps - low) / np.where(span > 0, span, 1), 0).astype(np.float32)


def upstream(graph: LayerGraph, tensor: str) -> set[str]:
    """Every tensor ``tensor`` is computed from, itself included."""
    seen, todo = {tensor}, [tensor]
    while todo:
        node = graph.producer.get(todo.pop())
        for name in node.inputs if node else ():
            if name and name not in seen:
                seen.add(name)
                todo.append(name)
    return seen


@register
class ScoreCAM(Method):
    """Wang et al. 2020, pytorch-grad-cam's definition. A = the layer's (N, K, h, w) activations;
    each channel upsampled to the input (corners aligned) and scaled to [0, 1] is a mask M_k
    (a constant channel: all zero, scored once for all such channels);
    s_k = the raw target score of x * M_k; w = softmax_k(s); the map is ReLU(sum_k w_k A_k) on
    the layer's grid, upsampled to the input. K forwards per photo.

    Raises:
        FixtraceError: ``layer`` is not a rank-4 tensor on the way to the logits.
    """

    name = "scorecam"
    summary = "layer channels as input masks, weighted by the score they keep (Wang et al. 2020)"
    rank = 23
    coarse_maps = True
    parameters: ClassVar[dict[str, Parameter]] = {"layer": LAYER}

    def __init__(self, graph: LayerGraph, logits: str, **options: Any) -> None:
        super().__init__(graph, logits, **options)
        self.layer: str = self.params["layer"] or last_spatial_layer(graph, self.shapes)
        self.layout = layer_on_path(self, self.layer)
        if self.layer not in upstream(graph, logits):
            raise FixtraceError(
                f"layer {self.layer!r} is not on the way from the input to the logits; `fixtrace layers MODEL` lists the layers"
            )
        self.needs.add(self.layer)
        self.touched.add(self.layer)

    def weights(self, run: Run, targets: list[int], activations: np.ndarray) -> np.ndarray:
        """float64 (N, K): the softmax over channels of the target score of each channel's masked input."""
        n, channels, h, w = activations.shape
        scores = np.empty((n, channels))
        # A channel constant on every photo is an all-zero mask: one forward of the blank input serves them all.
        varying = np.ptp(activations.reshape(n, channels, -1), axis=2).max(axis=0) > 0
        if not varying.all():
            blank = masked(run.batch, np.zeros((1, *run.grid), np.float32), run.channels_first)
            scores[:, ~varying] = target_scores(run, targets, blank)
        index = np.flatnonzero(varying)
        for start, stop in spans(len(index), n):
            chosen = index[start:stop]
            up = upsample_corners(activations[:, chosen].reshape(-1, h, w), run.grid)
            keep = unit_range(up).reshape(n, len(chosen), *run.grid)
            scores[:, chosen] = target_scores(run, targets, masked(run.batch, keep, run.channels_first))
        scores -= scores.max(axis=1, keepdims=True)
        weights = np.exp(scores)
        return weights / weights.sum(axis=1, keepdims=True)

    def explain(self, run: Run, targets: list[int]) -> Maps:
        activations = to_nchw(run.tensors.value(self.layer), self.layout).astype(np.float32)
        weights = self.weights(run, targets, activations)
        cam = np.maximum(np.einsum("nk,nkhw->nhw", weights, activations), 0).astype(np.float32)
        return Maps(upsample(cam, run.grid, self.upsample_mode), cam if self.wants_coarse else None)

    def settings(self) -> dict[str, Any]:
        return {"layer": self.layer}
