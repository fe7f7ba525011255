"""fixtrace: explain CNN image classifiers through their ONNX graph.

The public names are imported on first use, so that ``import fixtrace`` (and the command line's
argument parsing) stays light.
"""

from typing import TYPE_CHECKING

from fixtrace.lazy import lazy_exports

__version__ = "0.1.0"

if TYPE_CHECKING:
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

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "BatchItem": "fixtrace.api",
        "Explainer": "fixtrace.api",
        "explain": "fixtrace.api",
        "EmptyMapWarning": "fixtrace.errors",
        "FixtraceError": "fixtrace.errors",
        "ImageError": "fixtrace.errors",
        "InputShapeError": "fixtrace.errors",
        "ModelError": "fixtrace.errors",
        "OptionError": "fixtrace.errors",
        "OutputError": "fixtrace.errors",
        "TargetError": "fixtrace.errors",
        "UnsupportedOpError": "fixtrace.errors",
        "ClassScore": "fixtrace.explanation",
        "Explanation": "fixtrace.explanation",
        "LayerFixations": "fixtrace.explanation",
        "PresetChoice": "fixtrace.images.preset_choice",
        "choose_preset": "fixtrace.images.preset_choice",
        "PRESETS": "fixtrace.images.presets",
        "Preset": "fixtrace.images.presets",
    },
)
