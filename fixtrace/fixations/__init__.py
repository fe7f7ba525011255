"""CNN Fixations: walk the layer graph backwards from a class neuron, one rule per ONNX op.

Names are imported on first use, so that ``fixations.options`` stays light.
"""

from typing import TYPE_CHECKING

from fixtrace.lazy import lazy_exports

if TYPE_CHECKING:
    from fixtrace.fixations.fixation_set import FixationSet
    from fixtrace.fixations.options import FixationOptions
    from fixtrace.fixations.walk import BacktrackPlan, BacktrackResult
    from fixtrace.ops.registry import FIXATIONS

    #: Every op type that has a fixation rule, sorted.
    supported_ops = FIXATIONS.supported

__all__ = ["BacktrackPlan", "BacktrackResult", "FixationOptions", "FixationSet", "supported_ops"]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "BacktrackPlan": "fixtrace.fixations.walk",
        "BacktrackResult": "fixtrace.fixations.walk",
        "FixationOptions": "fixtrace.fixations.options",
        "FixationSet": "fixtrace.fixations.fixation_set",
        "supported_ops": "fixtrace.ops.registry:FIXATIONS.supported",
    },
)
