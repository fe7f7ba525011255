"""CNN Fixations: walk the layer graph backwards from a class neuron, one rule per ONNX op."""

from fixtrace.fixations.fixation_set import FixationSet
from fixtrace.fixations.options import FixationOptions
from fixtrace.fixations.registry import supported_ops
from fixtrace.fixations.walk import BacktrackPlan, BacktrackResult

__all__ = ["BacktrackPlan", "BacktrackResult", "FixationOptions", "FixationSet", "supported_ops"]
