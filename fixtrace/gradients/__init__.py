"""Vector-Jacobian products on the ONNX graph: the gradient of a class score with respect to any
tensor, walked backwards with one rule per op (no training framework at run time)."""

from fixtrace.gradients.registry import GRADIENT_RULES, RELU_MODES, VjpRule
from fixtrace.gradients.walk import GradientPlan

__all__ = ["GRADIENT_RULES", "GradientPlan", "RELU_MODES", "VjpRule"]
