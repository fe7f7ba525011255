"""The gradient walk: from a seed on one tensor back to every tensor below it, in numpy (``run``)
or as ONNX nodes (``emit``, for ``fixtrace compile``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, TypeVar

import numpy as np
import onnx

from fixtrace.errors import ModelError
from fixtrace.model.layer_graph import LayerGraph
from fixtrace.ops.base import RELU_MODES, VjpRule, compilable
from fixtrace.ops.registry import GRADIENTS, rules_below
from fixtrace.runtime.tensors import Tensors

if TYPE_CHECKING:
    from fixtrace.compile.builder import GraphBuilder

T = TypeVar("T")


class Engine(Protocol):
    """Something that runs a plan's walk another way: the end's gradient from the seed. When
    ``optional``, a ModelError it raises drops it and the numpy rules run instead."""

    optional: bool

    def run(self, seed: np.ndarray, tensors: Tensors) -> np.ndarray: ...


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
        #: Runs the walk instead of the numpy rules when set (``compile.backward.OnnxBackward``).
        self.engine: Engine | None = None

    @property
    def end(self) -> str:
        """The tensor the walk ends at: ``bottom``, else the image input."""
        return self.bottom or self.graph.image_input.name

    def run(self, seed: np.ndarray, tensors: Tensors, keep: set[str] | None = None) -> dict[str, np.ndarray]:
        """Walk the seed gradient down to the image input (or ``bottom``).

        Args:
            seed: d(score)/d(top), the shape of ``top``.
            tensors: the run's values and shapes.
            keep: tensors whose gradient to return besides the end's (default: none).

        Returns:
            Tensor name -> gradient, for the image input (or ``bottom``) and every tensor in ``keep`` reached.
        """
        if self.engine is not None and not keep:
            try:
                return {self.end: self.engine.run(seed, tensors)}
            except ModelError:
                if not self.engine.optional:
                    raise
                self.engine = None
        keep = keep or set()
        kept: dict[str, np.ndarray] = {}

        def backward(rule: VjpRule, grad: np.ndarray) -> list[tuple[str, np.ndarray]]:
            if rule.node.outputs[0] in keep:
                kept[rule.node.outputs[0]] = grad
            return rule.vjp(grad, tensors)

        end = self._walk(seed, backward, lambda a, b: a + b)
        kept[self.end] = end if end is not None else np.zeros(tensors.shape(self.end), dtype=np.float32)
        return kept

    def emit(self, builder: GraphBuilder, seed: str) -> str:
        """The walk as ONNX nodes: each rule's ``emit`` in the order ``run`` calls ``vjp``.

        Args:
            builder: where the nodes go.
            seed: the name of d(score)/d(top).

        Returns:
            The name of the gradient of the image input (or ``bottom``).

        Raises:
            UnsupportedOpError: a node on the path has no ONNX form of its gradient (the first in
                walk order; the message names the other op types lacking one).
        """
        missing = [r for r in self.rules if not r.emits()]
        if missing:
            others = sorted({r.node.op_type for r in missing} - {missing[0].node.op_type})
            more = f"; nor have {', '.join(others)} on the same path" if others else ""
            raise missing[0].unsupported(f"its gradient has no ONNX form for `fixtrace compile` yet{more}", compilable())
        builder.batch_from(seed)
        end = self._walk(seed, lambda rule, grad: rule.emit(builder, grad), lambda a, b: builder.op("Add", [a, b], "sum"))
        if end is None:
            zero = onnx.helper.make_tensor("value", onnx.TensorProto.FLOAT, [1], [0.0])
            return builder.op("ConstantOfShape", [builder.shape_of(self.end)], "zeros", value=zero)
        return end

    def _walk(self, seed: T, backward: Callable[[VjpRule, T], list[tuple[str, T]]], add: Callable[[T, T], T]) -> T | None:
        """Walk ``seed`` through ``backward`` rule by rule (consumers first); the end's gradient (None: never reached)."""
        pending: dict[str, T] = {self.top: seed}
        for r in self.rules:
            grad = pending.pop(r.node.outputs[0], None)
            if grad is None:
                continue
            for name, g in backward(r, grad):
                # A tensor read by several nodes gets the sum of their gradients.
                pending[name] = add(pending[name], g) if name in pending else g
        return pending.get(self.end)
