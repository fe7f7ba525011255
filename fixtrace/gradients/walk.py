"""The gradient walk: from a seed on one tensor back to every tensor below it."""

from __future__ import annotations

import numpy as np

from fixtrace.model.layer_graph import LayerGraph
from fixtrace.ops.base import RELU_MODES, VjpRule
from fixtrace.ops.registry import GRADIENTS, rules_below
from fixtrace.runtime.tensors import Tensors


class GradientPlan:
    """The gradient rules of every node between the image input and ``top``, prepared once.

    Args:
        graph: the layer graph.
        top: the tensor the seed gradient is given on (usually the logits).
        mode: how ReLU-like ops pass gradients (see RELU_MODES).
        bottom: stop at this tensor instead of the image input (Grad-CAM needs nothing below its layer).

    Raises:
        UnsupportedOpError: a node on the path has no gradient rule.
        ModelError: ``top`` is not computed, or does not depend on the image input.
    """

    def __init__(self, graph: LayerGraph, top: str, mode: str = "plain", bottom: str | None = None) -> None:
        if mode not in RELU_MODES:
            raise ValueError(f"mode must be one of {RELU_MODES}, not {mode!r}")
        self.graph = graph
        self.top = top
        self.mode = mode
        self.bottom = bottom
        self.rules: list[VjpRule] = rules_below(graph, top, lambda node: GRADIENTS.rule_for(node)(node, graph, mode), bottom)
        self.needs: set[str] = {t for r in self.rules for t in r.needs}
        self.touched: set[str] = {
            t for r in self.rules for t in (*r.node.inputs, *r.node.outputs) if t and not graph.is_constant(t)
        }

    def run(self, seed: np.ndarray, tensors: Tensors, keep: set[str] | None = None) -> dict[str, np.ndarray]:
        """Walk the seed gradient down to the image input (or ``bottom``).

        Args:
            seed: d(score)/d(top), the shape of ``top``.
            tensors: the run's values and shapes.
            keep: tensors whose gradient to return besides the end's (default: none).

        Returns:
            Tensor name -> gradient, for the image input (or ``bottom``) and every tensor in ``keep`` reached.
        """
        keep = keep or set()
        pending: dict[str, np.ndarray] = {self.top: seed}
        kept: dict[str, np.ndarray] = {}
        for r in self.rules:
            grad = pending.pop(r.node.outputs[0], None)
            if grad is None:
                continue
            if r.node.outputs[0] in keep:
                kept[r.node.outputs[0]] = grad
            for name, g in r.vjp(grad, tensors):
                # A tensor read by several nodes gets the sum of their gradients.
                pending[name] = pending[name] + g if name in pending else g
        end = self.bottom or self.graph.image_input.name
        kept[end] = pending.get(end, np.zeros(tensors.shape(end), dtype=np.float32))
        return kept
