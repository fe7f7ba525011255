"""Input-gradient methods: saliency, guided backprop, deconvnet."""

from __future__ import annotations

from typing import Any

import numpy as np

from fixtrace.gradients import GradientPlan
from fixtrace.methods.base import Method, register
from fixtrace.methods.resize import spatial_axes
from fixtrace.model.layer_graph import LayerGraph
from fixtrace.runtime.tensors import Tensors


def gradient_plan(method: Method, mode: str, bottom: str | None = None) -> GradientPlan:
    """A gradient walk from ``method``'s logits (down to ``bottom``), its needs joined to the method's."""
    plan = GradientPlan(method.graph, method.logits, mode, bottom)
    method.needs |= plan.needs
    method.touched |= plan.touched
    return plan


class InputGradient(Method):
    """The gradient of the class score with respect to the input pixels, with a ReLU mode."""

    mode = "plain"

    def __init__(self, graph: LayerGraph, logits: str, **options: Any) -> None:
        super().__init__(graph, logits, **options)
        self.plan = gradient_plan(self, self.mode)

    def attributions(self, tensors: Tensors, targets: list[int]) -> np.ndarray:
        """(N, C, H, W) (or NHWC) gradients of the target scores on the input."""
        return self.plan.run(self.seed(tensors, targets), tensors)[self.graph.image_input.name]

    def maps(self, tensors: Tensors, targets: list[int]) -> np.ndarray:
        channel = spatial_axes(self.graph)[0]
        return np.abs(self.attributions(tensors, targets)).max(axis=channel)


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


@register
class Deconvnet(InputGradient):
    """Zeiler & Fergus 2014: only positive gradients pass ReLUs, whatever the input."""

    name = "deconvnet"
    summary = "positive gradients through every ReLU (Zeiler & Fergus 2014)"
    mode = "deconvnet"
    rank = 12
