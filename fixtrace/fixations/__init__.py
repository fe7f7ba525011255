"""CNN Fixations: walk the layer graph backwards from a class neuron, one rule per ONNX op."""

from fixtrace.fixations.fixation_set import FixationSet
from fixtrace.fixations.options import FixationOptions
from fixtrace.fixations.walk import BacktrackPlan, BacktrackResult
from fixtrace.ops.registry import FIXATIONS

#: Every op type that has a fixation rule, sorted.
supported_ops = FIXATIONS.supported

__all__ = ["BacktrackPlan", "BacktrackResult", "FixationOptions", "FixationSet", "supported_ops"]
