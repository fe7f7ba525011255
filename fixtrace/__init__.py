"""fixtrace: explain CNN image classifiers through their ONNX graph."""

__version__ = "0.1.0"

from fixtrace.api import BatchItem, Explainer, explain
from fixtrace.errors import (
    EmptyMapWarning,
    FixtraceError,
    ImageError,
    InputShapeError,
    ModelError,
    OptionError,
    OutputError,
    TargetError,
    UnsupportedOpError,
)
from fixtrace.explanation import ClassScore, Explanation, LayerFixations
from fixtrace.images.preset_choice import PresetChoice, choose_preset
from fixtrace.images.presets import PRESETS, Preset

__all__ = [
    "PRESETS",
    "BatchItem",
    "ClassScore",
    "EmptyMapWarning",
    "Explainer",
    "Explanation",
    "FixtraceError",
    "ImageError",
    "InputShapeError",
    "LayerFixations",
    "ModelError",
    "OptionError",
    "OutputError",
    "Preset",
    "PresetChoice",
    "TargetError",
    "UnsupportedOpError",
    "__version__",
    "choose_preset",
    "explain",
]
