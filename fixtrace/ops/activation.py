"""Element-wise activations: a fixation passes through unchanged; the gradient is dy * f'(x)
(ReLU-like ops shaped by the gradient mode)."""

from __future__ import annotations

import numpy as np
from scipy import special

from fixtrace.kernels.cpu.gradients import (
    MODE_DECONVNET,
    MODE_GUIDED,
    MODE_PLAIN,
    masked_gradient,
)
from fixtrace.model.layer_graph import LayerGraph, Node
from fixtrace.ops.attributes import attribute
from fixtrace.ops.base import ElementwiseVjp, PassThrough, fixation_rule, vjp_rule

_ELEMENTWISE = (
    "Elu",
    "Selu",
    "Celu",
    "Sigmoid",
    "HardSigmoid",
    "HardSwish",
    "Tanh",
    "Softplus",
    "Mish",
    "Gelu",
    "Erf",
    "Pow",
)
TRAITS = {
    **{op: {"spatial", "activation"} for op in ("Relu", "Clip", "LeakyRelu")},
    **{op: {"spatial"} for op in _ELEMENTWISE},
    "PRelu": {"spatial", "weighted"},
}

_MODES = {"plain": MODE_PLAIN, "guided": MODE_GUIDED, "deconvnet": MODE_DECONVNET}


def clip_bounds(graph: LayerGraph, node: Node) -> tuple[float, float] | None:
    """(low, high) of a Relu or Clip node (-inf/inf where absent), or None when a bound is computed."""
    if node.op_type == "Relu":
        return 0.0, np.inf
    if "min" in node.attrs or "max" in node.attrs:  # opset < 11: the schema's defaults are the float32 limits
        return float(attribute(node, "min", graph.opset)), float(attribute(node, "max", graph.opset))
    bounds = []
    for k, default in ((1, -np.inf), (2, np.inf)):
        name = node.inputs[k] if len(node.inputs) > k else ""
        if not name:
            bounds.append(default)
        elif graph.is_constant(name):
            bounds.append(float(graph.constants[name]))
        else:
            return None
    return bounds[0], bounds[1]


@fixation_rule("Relu", "Clip", "LeakyRelu", "PRelu", *_ELEMENTWISE)
class ActivationPassThrough(PassThrough):
    """An activation keeps every index: fixations on its output are fixations on its input.

    Erf and Pow come from activations written out: torch's GELU before opset 20
    (x * 0.5 * (1 + erf(x / sqrt 2))), the tanh GELU's x^3.
    """

    def __init__(self, node, graph, options):
        super().__init__(node, graph, options)
        if node.op_type == "Pow" and not graph.is_constant(node.inputs[1]):
            raise self.unsupported("a computed exponent; only a constant exponent is handled")


@vjp_rule("Relu", "Clip")
class ReluVjp(ElementwiseVjp):
    """The gradient where the input is inside the bounds (strictly, as torch does), shaped by the mode:
    guided keeps only positive gradients there; deconvnet keeps positive gradients anywhere.

    low < x < high exactly where low < y < high, so the mask is read from the output y: the forward
    keeps the activation, not the conv output before it (which would break onnxruntime's Conv + Clip
    fusion), and the numpy and ONNX forms read the same tensor.
    """

    def __init__(self, node, graph, mode):
        super().__init__(node, graph, mode)
        bounds = clip_bounds(graph, node)
        if bounds is None:
            raise self.unsupported("the clip bounds are computed, not constant")
        self.low, self.high = bounds
        self.needs = (node.outputs[0],)

    def vjp(self, grad, tensors):
        y = np.ascontiguousarray(tensors.value(self.node.outputs[0]), dtype=np.float32)
        passed = masked_gradient(np.ascontiguousarray(grad, dtype=np.float32), y, self.low, self.high, _MODES[self.mode])
        return [(self.node.inputs[0], passed.reshape(y.shape))]

    def emit(self, builder, grad):
        x, y = self.node.inputs[0], self.node.outputs[0]
        if self.mode == "deconvnet":
            return [(x, builder.masked(grad, builder.op("Greater", [grad, builder.scalar(0.0)], "positive")))]
        inside = None
        if self.low > -np.inf:
            inside = builder.op("Greater", [y, builder.scalar(self.low)], "above")
        if self.high < np.inf:
            inside = builder.both(inside, builder.op("Less", [y, builder.scalar(self.high)], "below"))
        if self.mode == "guided":
            inside = builder.both(inside, builder.op("Greater", [grad, builder.scalar(0.0)], "positive"))
        return [(x, grad if inside is None else builder.masked(grad, inside))]


@vjp_rule("LeakyRelu")
class LeakyReluVjp(ElementwiseVjp):
    def derivative(self, x):
        return np.where(x > 0, 1.0, float(self.attr("alpha"))).astype(np.float32)

    def emit_derivative(self, builder, x):
        positive = builder.op("Greater", [x, builder.scalar(0.0)], "positive")
        return builder.where(positive, builder.scalar(1.0), builder.scalar(float(self.attr("alpha"))))


@vjp_rule("PRelu")
class PReluVjp(ElementwiseVjp):
    """1 where x > 0, else the slope (a constant, broadcast to x)."""

    def __init__(self, node, graph, mode):
        super().__init__(node, graph, mode)
        self.slope = np.asarray(self.constant(1), dtype=np.float32)

    def derivative(self, x):
        return np.where(x > 0, np.float32(1.0), self.slope).astype(np.float32)

    def emit_derivative(self, builder, x):
        positive = builder.op("Greater", [x, builder.scalar(0.0)], "positive")
        return builder.where(positive, builder.scalar(1.0), self.node.inputs[1])


@vjp_rule("Elu", "Celu", "Selu")
class ExponentialVjp(ElementwiseVjp):
    """Elu: alpha e^x below 0; Celu: e^(x / alpha); Selu: gamma (1 above 0, alpha e^x below)."""

    def derivative(self, x):
        alpha = float(self.attr("alpha"))
        x = x.astype(np.float64)
        op = self.node.op_type
        below = np.exp(x / alpha) if op == "Celu" else alpha * np.exp(np.minimum(x, 0.0))
        scale = float(self.attr("gamma")) if op == "Selu" else 1.0
        return (scale * np.where(x > 0, 1.0, below)).astype(np.float32)

    def emit_derivative(self, builder, x):
        alpha = float(self.attr("alpha"))
        op = self.node.op_type
        if op == "Celu":
            below = builder.op("Exp", [builder.op("Div", [x, builder.scalar(alpha)], "scaled")], "exp")
        else:
            below = builder.op("Exp", [builder.op("Min", [x, builder.scalar(0.0)], "negative")], "exp")
            below = builder.op("Mul", [builder.scalar(alpha), below], "below")
        slope = builder.where(builder.op("Greater", [x, builder.scalar(0.0)], "positive"), builder.scalar(1.0), below)
        return builder.op("Mul", [builder.scalar(float(self.attr("gamma"))), slope], "slope") if op == "Selu" else slope


@vjp_rule("Sigmoid")
class SigmoidVjp(ElementwiseVjp):
    def derivative(self, x):
        s = special.expit(x.astype(np.float64))
        return (s * (1.0 - s)).astype(np.float32)

    def emit_derivative(self, builder, x):
        s = builder.op("Sigmoid", [x], "sigmoid")
        return builder.op("Mul", [s, builder.op("Sub", [builder.scalar(1.0), s], "complement")], "slope")


@vjp_rule("Tanh")
class TanhVjp(ElementwiseVjp):
    def derivative(self, x):
        return (1.0 - np.tanh(x.astype(np.float64)) ** 2).astype(np.float32)

    def emit_derivative(self, builder, x):
        t = builder.op("Tanh", [x], "tanh")
        return builder.op("Sub", [builder.scalar(1.0), builder.op("Mul", [t, t], "square")], "slope")


@vjp_rule("Softplus")
class SoftplusVjp(ElementwiseVjp):
    """d log(1 + e^x) = sigmoid(x)."""

    def derivative(self, x):
        return special.expit(x.astype(np.float64)).astype(np.float32)

    def emit_derivative(self, builder, x):
        return builder.op("Sigmoid", [x], "slope")


@vjp_rule("Mish")
class MishVjp(ElementwiseVjp):
    """y = x tanh(softplus(x)): y' = tanh(sp) + x sigmoid(x) (1 - tanh(sp)^2)."""

    def derivative(self, x):
        x = x.astype(np.float64)
        t = np.tanh(np.logaddexp(0.0, x))
        return (t + x * special.expit(x) * (1.0 - t * t)).astype(np.float32)


@vjp_rule("Gelu")
class GeluVjp(ElementwiseVjp):
    """approximate="none": Phi(x) + x phi(x); "tanh": the derivative of torch's tanh formula."""

    def derivative(self, x):
        x = x.astype(np.float64)
        if self.attr("approximate") == "tanh":
            c = np.sqrt(2.0 / np.pi)
            t = np.tanh(c * (x + 0.044715 * x**3))
            return (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * c * (1.0 + 3 * 0.044715 * x * x)).astype(np.float32)
        return (special.ndtr(x) + x * np.exp(-0.5 * x * x) / np.sqrt(2.0 * np.pi)).astype(np.float32)


@vjp_rule("HardSigmoid")
class HardSigmoidVjp(ElementwiseVjp):
    def derivative(self, x):
        alpha, beta = float(self.attr("alpha")), float(self.attr("beta"))
        z = alpha * x + beta
        return np.where((z > 0) & (z < 1), alpha, 0.0).astype(np.float32)

    def emit_derivative(self, builder, x):
        alpha, beta = float(self.attr("alpha")), float(self.attr("beta"))
        z = builder.op("Add", [builder.op("Mul", [x, builder.scalar(alpha)], "scaled"), builder.scalar(beta)], "z")
        inside = builder.op(
            "And",
            [builder.op("Greater", [z, builder.scalar(0.0)], "above"), builder.op("Less", [z, builder.scalar(1.0)], "below")],
            "inside",
        )
        return builder.where(inside, builder.scalar(alpha), builder.scalar(0.0))


@vjp_rule("HardSwish")
class HardSwishVjp(ElementwiseVjp):
    """y = x * clip(x / 6 + 1/2, 0, 1): 0 below -3, x / 3 + 1/2 up to 3, 1 above (torch's branches)."""

    def derivative(self, x):
        return np.where(x < -3, 0.0, np.where(x <= 3, x / 3.0 + 0.5, 1.0)).astype(np.float32)

    def emit_derivative(self, builder, x):
        ramp = builder.op("Add", [builder.op("Div", [x, builder.scalar(3.0)], "third"), builder.scalar(0.5)], "ramp")
        upper = builder.where(builder.op("Greater", [x, builder.scalar(3.0)], "above"), builder.scalar(1.0), ramp)
        return builder.where(builder.op("Less", [x, builder.scalar(-3.0)], "below"), builder.scalar(0.0), upper)


@vjp_rule("Erf")
class ErfVjp(ElementwiseVjp):
    """d erf(x) = 2 / sqrt(pi) e^(-x^2)."""

    def derivative(self, x):
        x = x.astype(np.float64)
        return (2.0 / np.sqrt(np.pi) * np.exp(-x * x)).astype(np.float32)

    def emit_derivative(self, builder, x):
        square = builder.op("Neg", [builder.op("Mul", [x, x], "square")], "negated")
        return builder.op("Mul", [builder.scalar(2.0 / np.sqrt(np.pi)), builder.op("Exp", [square], "exp")], "slope")


@vjp_rule("Pow")
class PowVjp(ElementwiseVjp):
    """d x^p = p x^(p - 1), the exponent p a constant."""

    def __init__(self, node, graph, mode):
        super().__init__(node, graph, mode)
        self.exponent = np.asarray(self.constant(1), dtype=np.float64)

    def derivative(self, x):
        p = self.exponent
        return (p * np.power(x.astype(np.float64), p - 1)).astype(np.float32)
