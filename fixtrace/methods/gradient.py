"""Input-gradient methods: saliency, guided backprop, deconvnet."""

from __future__ import annotations

import numpy as np

from fixtrace.methods.base import MapMethod, spatial_axes


class _InputGradient(MapMethod):
    """The gradient of the class score with respect to the input pixels, with a ReLU mode."""

    mode = "plain"

    def __init__(self, graph, logits, **options):
        super().__init__(graph, logits, **options)
        self.plan = self.gradient_plan(self.mode)

    def attributions(self, tensors, targets):
        return self.plan.run(self.seed(tensors, targets), tensors)[self.graph.image_input.name]

    def maps(self, tensors, targets):
        channel = spatial_axes(self.graph)[0]
        return np.abs(self.attributions(tensors, targets)).max(axis=channel)


class Saliency(_InputGradient):
    """Simonyan et al. 2014: |d score / d x|, the maximum over colour channels as the map.
    ``attributions`` gives the absolute gradient, as Captum's Saliency does."""

    name = "saliency"

    def attributions(self, tensors, targets):
        return np.abs(super().attributions(tensors, targets))


class GuidedBackprop(_InputGradient):
    """Springenberg et al. 2015: only positive gradients pass ReLUs, and only where the input was positive."""

    name = "guided-backprop"
    mode = "guided"


class Deconvnet(_InputGradient):
    """Zeiler & Fergus 2014: only positive gradients pass ReLUs, whatever the input."""

    name = "deconvnet"
    mode = "deconvnet"
