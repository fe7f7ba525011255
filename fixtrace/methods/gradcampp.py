"""Grad-CAM++ (Chattopadhay et al. 2018) as pytorch-grad-cam computes it."""

from __future__ import annotations

import numpy as np

from fixtrace.methods.base import register
from fixtrace.methods.cam import LayerGradientMethod

#: pytorch-grad-cam's guard against a zero denominator.
EPS = 1e-6


@register
class GradCAMPlusPlus(LayerGradientMethod):
    """Chattopadhay et al. 2018, with pytorch-grad-cam's closed form (the paper's exponential of
    the score turns its higher derivatives into powers of the first, eq. 19): with g = d score / d A,
    alpha = g^2 / (2 g^2 + sum_ij(A_k) g^3 + 1e-6) (0 where g = 0), w_k = sum_ij alpha relu(g), and
    the map ReLU(sum_k w_k A_k).

    Raises:
        FixtraceError: ``layer`` is not a rank-4 tensor on the way to the logits.
    """

    name = "gradcam++"
    summary = "Grad-CAM with positive gradients weighted per position (Chattopadhay et al. 2018)"
    rank = 24

    def weights(self, grads: np.ndarray, activations: np.ndarray) -> np.ndarray:
        square = grads**2
        total = activations.sum(axis=(2, 3), keepdims=True)
        alpha = np.where(grads != 0, square / (2 * square + total * square * grads + EPS), 0)
        return (alpha * np.maximum(grads, 0)).sum(axis=(2, 3), keepdims=True)

    def emit_weights(self, builder, grads, activations):
        square = builder.op("Mul", [grads, grads], "square")
        total = builder.reduce("ReduceSum", activations, [2, 3])
        cubic = builder.op("Mul", [builder.op("Mul", [total, square], "cubic"), grads], "cubic")
        twice = builder.op("Mul", [builder.scalar(2.0), square], "twice")
        below = builder.op("Add", [builder.op("Add", [twice, cubic], "below"), builder.scalar(EPS)], "below")
        alpha = builder.masked(builder.op("Div", [square, below], "alpha"), builder.nonzero(grads))
        positive = builder.op("Mul", [alpha, builder.op("Relu", [grads], "positive")], "weighted")
        return builder.reduce("ReduceSum", positive, [2, 3])
