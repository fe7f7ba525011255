"""Input-gradient methods: saliency, guided backprop, deconvnet; and the base of the methods that
walk gradients on new inputs made from the photo (Integrated Gradients, SmoothGrad)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
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
#: Memory for one walk on new inputs: the tensors its forward keeps, and as much again for the
#: gradients in flight. MobileNetV2 keeps 24 MB per input, so about 5 inputs are walked at once.
WALK_BYTES = 256 * 2**20


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
    onnx_backward = True

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


class CopiesGradient(Method):
    """Base of the methods that average input gradients over copies of each photo the model runs
    again (Integrated Gradients' path, SmoothGrad's noisy copies). The batch's own forward keeps
    nothing for them; the copies go through a forward keeping what the plain gradient walk reads
    and through the walk, as many at a time as ``WALK_BYTES`` allows, every photo of the batch
    together.
    """

    onnx_backward = True

    def __init__(self, graph: LayerGraph, logits: str, **options: Any) -> None:
        super().__init__(graph, logits, **options)
        self.plan = GradientPlan(graph, logits, "plain")
        # What the copies' forward keeps: the walk's reads, and tensors whose shapes inference cannot tell.
        self.keep = frozenset(self.plan.needs | {t for t in self.plan.touched if t not in self.shapes})

    def keep_for_walk(self, names: set[str]) -> None:
        """The walk runs on the copies' forward: that one keeps ``names``."""
        self.keep |= names

    def per_walk(self, run: Run) -> int:
        """Copies walked at once: what ``WALK_BYTES`` holds (a fixed batch dim: exactly that many)."""
        fixed = self.graph.image_input.fixed_batch
        if fixed:
            return fixed
        per_copy = 4 * sum(int(np.prod(self.shapes[t][1:])) for t in self.keep if t in self.shapes)
        per_copy += 4 * int(np.prod(run.batch.shape[1:]))
        return int(np.clip(WALK_BYTES // (2 * per_copy), 1, run.forward.chunk))

    def gradients(
        self, run: Run, count: int, make: Callable[[np.ndarray], tuple[np.ndarray, list[int]]]
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The gradient of each copy's target score on the copy, a bounded number at a time.

        Args:
            run: the batch's run (its forward runs the copies).
            count: copies in all.
            make: copy indices -> (those copies, shaped as the model input; their target classes).

        Yields:
            (copy indices, float32 gradients shaped as the copies).
        """
        step = self.per_walk(run)
        for start in range(0, count, step):
            index = np.arange(start, min(count, start + step))
            copies, targets = make(index)
            tensors = run.tensors_of(copies, self.keep)
            padding = tensors.shape(self.logits)[0] - len(index)  # a fixed batch dim's zero rows
            seed = self.seed(tensors, [*targets, *[0] * padding])
            seed[len(index) :] = 0
            yield index, self.plan.run(seed, tensors)[self.graph.image_input.name][: len(index)]
