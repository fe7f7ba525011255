"""``fixtrace compile``: an explanation method written into the model as extra outputs."""

from fixtrace.compile.compiler import Compiled, compile_explanation, compiled_methods

__all__ = ["Compiled", "compile_explanation", "compiled_methods"]
