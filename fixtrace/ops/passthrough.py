"""Identity, Dropout (inference: identity) and Cast: fixations and gradients pass unchanged."""

from __future__ import annotations

from fixtrace.ops.base import DataVjp, PassThrough, fixation_rule, vjp_rule

TRAITS = {"Identity": {"reindex"}, "Dropout": {"reindex"}}


@fixation_rule("Identity", "Dropout", "Cast")
class IdentityPassThrough(PassThrough):
    """The output is the input: same fixations."""


@vjp_rule("Identity", "Dropout", "Cast")
class IdentityVjp(DataVjp):
    """The output is the input: same gradient."""

    def vjp(self, grad, tensors):
        return [(self.node.inputs[0], grad)]

    def emit(self, builder, grad):
        return [(self.node.inputs[0], grad)]
