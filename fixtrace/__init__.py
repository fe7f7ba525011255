"""fixtrace: explain CNN image classifiers through their ONNX graph."""

__version__ = "0.1.0"

from fixtrace.api import BatchItem, Explainer, explain  # noqa: E402
from fixtrace.errors import (  # noqa: E402
    FixtraceError,
    ImageError,
    InputShapeError,
    ModelError,
    OptionError,
    OutputError,
    TargetError,
    UnsupportedOpError,
)
from fixtrace.explanation import ClassScore, Explanation, LayerFixations  # noqa: E402

__all__ = [
    "BatchItem", "ClassScore", "Explainer", "Explanation", "FixtraceError", "ImageError", "InputShapeError", "LayerFixations",
    "ModelError", "OptionError", "OutputError", "TargetError", "UnsupportedOpError", "explain", "__version__",
]
