"""Element-wise activations and identities."""

from __future__ import annotations

import numpy as np

from fixtrace.fixations.recompute import clip_bounds
from fixtrace.gradients.registry import VjpRule, vjp_rule
from fixtrace.kernels.cpu.gradients import MODE_DECONVNET, MODE_GUIDED, MODE_PLAIN, masked_gradient

_MODES = {"plain": MODE_PLAIN, "guided": MODE_GUIDED, "deconvnet": MODE_DECONVNET}


class _Elementwise(VjpRule):
    """dx = dy * f'(x), reading the data input."""

    def __init__(self, node, graph, mode):
        super().__init__(node, graph, mode)
        self.routes = (node.inputs[0],)
        self.needs = (node.inputs[0],)

    def vjp(self, grad, tensors):
        return [(self.node.inputs[0], (grad * self.derivative(tensors.value(self.node.inputs[0]))).astype(np.float32))]

    def derivative(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError


@vjp_rule("Relu", "Clip")
class ReluVjp(_Elementwise):
    """The gradient where the input is inside the bounds (strictly, as torch does), shaped by the mode:
    guided keeps only positive gradients there; deconvnet keeps positive gradients anywhere."""

    def __init__(self, node, graph, mode):
        super().__init__(node, graph, mode)
        bounds = clip_bounds(graph, node)
        if bounds is None:
            raise self.unsupported("the clip bounds are computed, not constant")
        self.low, self.high = bounds
        self.routes = (node.inputs[0],)

    def vjp(self, grad, tensors):
        x = np.ascontiguousarray(tensors.value(self.node.inputs[0]), dtype=np.float32)
        passed = masked_gradient(np.ascontiguousarray(grad, dtype=np.float32), x, self.low, self.high, _MODES[self.mode])
        return [(self.node.inputs[0], passed.reshape(x.shape))]


@vjp_rule("LeakyRelu")
class LeakyReluVjp(_Elementwise):
    def derivative(self, x):
        return np.where(x > 0, 1.0, float(self.node.attr("alpha", 0.01))).astype(np.float32)


@vjp_rule("Sigmoid")
class SigmoidVjp(_Elementwise):
    def derivative(self, x):
        s = 1.0 / (1.0 + np.exp(-x.astype(np.float64)))
        return (s * (1.0 - s)).astype(np.float32)


@vjp_rule("HardSigmoid")
class HardSigmoidVjp(_Elementwise):
    def derivative(self, x):
        alpha, beta = float(self.node.attr("alpha", 0.2)), float(self.node.attr("beta", 0.5))
        z = alpha * x + beta
        return np.where((z > 0) & (z < 1), alpha, 0.0).astype(np.float32)


@vjp_rule("HardSwish")
class HardSwishVjp(_Elementwise):
    """y = x * clip(x / 6 + 1/2, 0, 1): 0 below -3, x / 3 + 1/2 up to 3, 1 above (torch's branches)."""

    def derivative(self, x):
        return np.where(x < -3, 0.0, np.where(x <= 3, x / 3.0 + 0.5, 1.0)).astype(np.float32)


@vjp_rule("Identity", "Dropout", "Cast")
class IdentityVjp(VjpRule):
    def __init__(self, node, graph, mode):
        super().__init__(node, graph, mode)
        self.routes = (node.inputs[0],)

    def vjp(self, grad, tensors):
        return [(self.node.inputs[0], grad)]
