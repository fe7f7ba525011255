"""Vector-Jacobian products on the ONNX graph: the gradient of a class score with respect to any
tensor, walked backwards with one rule per op (no training framework at run time)."""

from fixtrace.gradients.walk import GradientPlan
from fixtrace.ops.base import RELU_MODES, VjpRule
from fixtrace.ops.registry import GRADIENTS as GRADIENT_RULES

__all__ = ["GRADIENT_RULES", "RELU_MODES", "GradientPlan", "VjpRule"]
