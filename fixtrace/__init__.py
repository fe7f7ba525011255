"""fixtrace: explain CNN image classifiers through their ONNX graph.

The public names are imported on first use, so that ``import fixtrace`` (and the command line's
argument parsing) stays light.
"""

import os
from typing import TYPE_CHECKING

from fixtrace.lazy import lazy_exports

__version__ = "0.1.0"

# OpenMP threads (numba's omp layer, scikit-learn's t-SNE) that spin while waiting collapse on a
# machine where other work runs: t-SNE of 400 codes went 1.8 s -> 6.2 s with one busy process beside
# it, 2.3 s -> 2.5 s with passive waiting (bench/bench_load.py). Only before an OpenMP runtime loads,
# and only when the user has not chosen.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

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
