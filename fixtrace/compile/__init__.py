"""``fixtrace compile``: an explanation method written into the model as extra outputs.

Names are imported on first use, so that registering the verb's flags stays light.
"""

from typing import TYPE_CHECKING

from fixtrace.lazy import lazy_exports

if TYPE_CHECKING:
    from fixtrace.compile.compiler import Compiled, compile_explanation, compiled_methods

#: Where a gradient walk runs (``Explainer(backward=...)``, ``--backward``; see ``compile.backward``).
BACKWARDS = ("auto", "numpy", "onnx")

__all__ = ["BACKWARDS", "Compiled", "compile_explanation", "compiled_methods"]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {name: "fixtrace.compile.compiler" for name in ("Compiled", "compile_explanation", "compiled_methods")},
)
