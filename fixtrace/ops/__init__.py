"""Op knowledge, one module per op family: each holds the family's fixation rules, its gradient
(VJP) rules and its traits. The modules are found and imported on first use (see ``registry``):
adding an op is adding one module here.

Queries: ``supported(kind)``, ``has_trait(op, trait)``, ``ops_with(trait)``; ``registered(module)``
plugs a module in for a ``with`` block.
"""

from fixtrace.ops.registry import FIXATIONS, GRADIENTS, registered
from fixtrace.ops.traits import TRAIT_NAMES, has_trait, ops_with, supported

__all__ = ["FIXATIONS", "GRADIENTS", "TRAIT_NAMES", "has_trait", "ops_with", "registered", "supported"]
