"""Gradient walks run by onnxruntime: a plan's rules in their ONNX form (``emit``) as a backward-only
model fed the forward's kept tensors, in place of the numpy walk (``GradientPlan.run``).

``Explainer(backward=...)`` chooses: ``numpy``, ``onnx``, or ``auto`` (the default): onnxruntime
for the walks down to the input (saliency, guided backprop, deconvnet, Integrated Gradients,
SmoothGrad) wherever every rule has an ONNX form, numpy for the short walks down to a layer (the
Grad-CAM family) and wherever an op has no ONNX form. On MobileNetV2 (2 threads,
bench/bench_compile.py, forward + walk) onnxruntime took 3.4-4.4x a forward against numpy's
3.8-5.6x for saliency at batch 1 and 4.5-5.5x against 6.5-7.3x at batch 8; Grad-CAM's walk is 1-2
ms either way, and the runs disagree on which is faster end to end.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from fixtrace import validate
from fixtrace.compile import BACKWARDS
from fixtrace.compile.compiler import model_builder
from fixtrace.errors import FixtraceError, ModelError, first_line
from fixtrace.gradients import GradientPlan
from fixtrace.methods.base import Method
from fixtrace.runtime.runner import Runner
from fixtrace.runtime.session import clean_error, open_session
from fixtrace.runtime.tensors import Tensors


class OnnxBackward:
    """A plan's walk as an onnxruntime session, with ``GradientPlan.run``'s interface.

    Args:
        plan: the walk.
        runner: the model's runner (shapes, providers, threads).
        optional: the numpy walk may take over when onnxruntime fails (``GradientPlan.run``).

    Attributes:
        needs: the forward tensors the backward model reads (the runner must keep them).

    Raises:
        UnsupportedOpError: a rule on the walk has no ONNX form.
        ModelError: onnxruntime refuses the backward model.
    """

    def __init__(self, plan: GradientPlan, runner: Runner, optional: bool = False) -> None:
        self.optional = optional
        graph = plan.graph
        builder = model_builder(runner, plan.touched | {plan.top})
        self.seed = builder.fresh("seed", prefixed=False)
        self.output = builder.output(plan.emit(builder, self.seed), "gradient")
        self.end = plan.end
        made = {t for n in builder.nodes for t in n.output} | {i.name for i in builder.initializers}
        read = {t for n in builder.nodes for t in n.input if t} - made - {self.seed}
        self.needs = sorted(t for t in read if not graph.is_constant(t))
        weights = [numpy_helper.from_array(np.asarray(graph.constants[t]), t) for t in sorted(read - set(self.needs))]
        inputs = [helper.make_tensor_value_info(t, TensorProto.FLOAT, None) for t in (self.seed, *self.needs)]
        model = helper.make_model(
            helper.make_graph(
                builder.nodes,
                "fixtrace_backward",
                inputs,
                [helper.make_tensor_value_info(self.output, TensorProto.FLOAT, None)],
                [*builder.initializers, *weights],
            ),
            opset_imports=list(graph.model.opset_import),
            ir_version=graph.model.ir_version,
        )
        self._session, _, _ = open_session(model.SerializeToString(), runner.providers, runner.threads, "the backward model")

    def run(self, seed: np.ndarray, tensors: Tensors) -> np.ndarray:
        """The gradient at the walk's end.

        Raises:
            ModelError: onnxruntime fails.
        """
        feeds = {self.seed: np.ascontiguousarray(seed, dtype=np.float32)}
        feeds |= {t: np.ascontiguousarray(tensors.value(t), dtype=np.float32) for t in self.needs}
        try:
            (gradient,) = self._session.run([self.output], feeds)
        except Exception as exc:  # onnxruntime's own error types
            raise ModelError(f"onnxruntime failed while running the backward: {clean_error(first_line(exc))}") from None
        return gradient


def walks(method: Method) -> Iterator[tuple[Method, GradientPlan]]:
    """Every gradient walk a method runs, with its owner (the methods it wraps or combines
    included; ``Method.onnx_backward`` marks the owners)."""
    for value in list(vars(method).values()):
        if isinstance(value, GradientPlan) and method.onnx_backward:
            yield method, value
        elif isinstance(value, Method):
            yield from walks(value)


def choose_backward(method: Method, choice: str, runner: Runner) -> str | None:
    """Run ``method``'s walks where ``choice`` says; the owners keep what the walks read.

    Args:
        method: a method just built (before ``Runner.prepare``).
        choice: one of BACKWARDS.
        runner: the model's runner.

    Returns:
        Where its walks run: ``"onnx"``, ``"numpy"`` or both (``"numpy+onnx"``); None without a walk.

    Raises:
        OptionError: ``choice`` is not one of BACKWARDS.
        UnsupportedOpError, ModelError: ``onnx`` asked for a walk that cannot be written as ONNX
            (an op without an ONNX form) or that onnxruntime refuses.
    """
    choice = validate.choice("backward", choice, BACKWARDS, "--backward")
    places = set()
    for owner, plan in list(walks(method)):
        if choice == "onnx" or (choice == "auto" and plan.bottom is None):
            try:
                plan.engine = engine = OnnxBackward(plan, runner, optional=choice == "auto")
            except FixtraceError:  # an op without an ONNX form, a shape the backward cannot be written for
                if choice == "onnx":
                    raise
            else:
                owner.keep_for_walk(set(engine.needs))
                if owner is not method:  # a wrapper keeps what the methods it wraps need
                    method.needs |= owner.needs
        places.add("onnx" if plan.engine is not None else "numpy")
    return "+".join(sorted(places)) or None
