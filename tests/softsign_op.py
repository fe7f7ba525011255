"""A toy op module, written exactly as a module of ``fixtrace.ops`` is: Softsign, y = x / (1 + |x|).

Plugged in by test_ops_registry.py with ``fixtrace.ops.registered``: adding an op is this one module.
"""

from __future__ import annotations

import numpy as np

from fixtrace.ops.base import ElementwiseVjp, PassThrough, fixation_rule, vjp_rule

TRAITS = {"Softsign": {"spatial"}}


@fixation_rule("Softsign")
class SoftsignPassThrough(PassThrough):
    """Element-wise: fixations keep their position."""


@vjp_rule("Softsign")
class SoftsignVjp(ElementwiseVjp):
    """y' = 1 / (1 + |x|)^2."""

    def derivative(self, x):
        return (1.0 / (1.0 + np.abs(x.astype(np.float64))) ** 2).astype(np.float32)
