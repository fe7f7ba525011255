"""Input-gradient methods: saliency, guided backprop, deconvnet."""

from __future__ import annotations

from typing import Any

import numpy as np

from fixtrace.gradients import GradientPlan
from fixtrace.methods.base import Maps, Method, register
from fixtrace.methods.resize import spatial_axes
from fixtrace.model.layer_graph import LayerGraph
from fixtrace.render.display import GRADIENT_DISPLAY, SIGNED_GRADIENT_DISPLAY
from fixtrace.runtime.run import Run
from fixtrace.runtime.tensors import Tensors

#: The ops whose gradient rule reads the forward pass but ignores it in deconvnet mode.
_DECONVNET_BLIND = ("Relu", "Clip")


def gradient_plan(method: Method, mode: str, bottom: str | None = None) -> GradientPlan:
    """A gradient walk from ``method``'s logits (down to ``bottom``), its needs joined to the method's."""
    plan = GradientPlan(method.graph, method.logits, mode, bottom)
    method.needs |= plan.needs
    method.touched |= plan.touched
    return plan


def gradient_maps(method: Method, gradients: np.ndarray) -> Maps:
    """Maps from input gradients (N, C, H, W) or (N, H, W, C): the magnitude's max over colours,
    and, when the method's display has a signed view, the signed gradients channels last."""
    channel = spatial_axes(method.graph)[0]
    maps = np.abs(gradients).max(axis=channel)
    return Maps(maps, gradients=np.moveaxis(gradients, channel, -1) if method.display.signed else None)


class InputGradient(Method):
    """The gradient of the class score with respect to the input pixels, with a ReLU mode."""

    mode = "plain"
    display = GRADIENT_DISPLAY

    def __init__(self, graph: LayerGraph, logits: str, **options: Any) -> None:
        super().__init__(graph, logits, **options)
        self.plan = gradient_plan(self, self.mode)

    def attributions(self, tensors: Tensors, targets: list[int]) -> np.ndarray:
        """(N, C, H, W) (or NHWC) gradients of the target scores on the input."""
        return self.plan.run(self.seed(tensors, targets), tensors)[self.graph.image_input.name]

    def maps(self, tensors: Tensors, targets: list[int]) -> np.ndarray:
        channel = spatial_axes(self.graph)[0]
        return np.abs(self.attributions(tensors, targets)).max(axis=channel)

    def explain(self, run: Run, targets: list[int]) -> Maps:
        if not self.display.signed:
            return super().explain(run, targets)
        return gradient_maps(self, self.attributions(run.tensors, targets))


@register
class Saliency(InputGradient):
    """Simonyan et al. 2014: |d score / d x|, the maximum over colour channels as the map.
    ``attributions`` gives the absolute gradient, as Captum's Saliency does."""

    name = "saliency"
    summary = "|d score / d pixel|, max over colours (Simonyan et al. 2014)"
    rank = 10

    def attributions(self, tensors: Tensors, targets: list[int]) -> np.ndarray:
        return np.abs(super().attributions(tensors, targets))


@register
class GuidedBackprop(InputGradient):
    """Springenberg et al. 2015: only positive gradients pass ReLUs, and only where the input was positive."""

    name = "guided-backprop"
    summary = "positive gradients through positive activations (Springenberg et al. 2015)"
    mode = "guided"
    rank = 11
    display = SIGNED_GRADIENT_DISPLAY


@register
class Deconvnet(InputGradient):
    """Zeiler & Fergus 2014: only positive gradients pass ReLUs, whatever the input."""

    name = "deconvnet"
    summary = "positive gradients through every ReLU (Zeiler & Fergus 2014)"
    mode = "deconvnet"
    rank = 12
    display = SIGNED_GRADIENT_DISPLAY

    def notes(self) -> list[str]:
        """A note when no rule on the backward path uses the forward pass (no max pool, no gate,
        no activation but ReLU/Clip, which deconvnet passes whatever their input): the map is then
        the same for every photo, and changes little between classes."""
        if any(rule.needs and rule.node.op_type not in _DECONVNET_BLIND for rule in self.plan.rules):
            return []
        return [
            "image-blind on this model: nothing on its backward path reads the forward pass (no max pool; "
            "deconvnet passes ReLUs whatever their input), so the map is the same for every photo and changes "
            "little with the class (r = 0.99999 between two classes on MobileNetV2): it shows the architecture, "
            "not the evidence"
        ]
