"""Explanation methods, one module each, all on one base (``base.Method``): CNN Fixations, the
gradient family (Integrated Gradients and SmoothGrad among them), the CAM family (Grad-CAM++,
LayerCAM and XGrad-CAM on Grad-CAM's base), the methods that run the model again (occlusion,
RISE, Score-CAM), and Gradual Extrapolation as a wrapper of any method with coarse maps.

Importing this package imports every module in it, so a new method is one module with a class
decorated ``@register``.
"""

import importlib
import pkgutil

from fixtrace.methods.base import METHODS, Maps, Method, Parameter, method_names, register

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

from fixtrace.methods.cam import CAM, GradCAM, GuidedGradCAM  # noqa: E402
from fixtrace.methods.extrapolation import Extrapolated, GradualExtrapolation  # noqa: E402
from fixtrace.methods.fixations import Fixations  # noqa: E402
from fixtrace.methods.gradcampp import GradCAMPlusPlus  # noqa: E402
from fixtrace.methods.gradient import Deconvnet, GuidedBackprop, Saliency  # noqa: E402
from fixtrace.methods.integrated import IntegratedGradients  # noqa: E402
from fixtrace.methods.layercam import LayerCAM  # noqa: E402
from fixtrace.methods.occlusion import Occlusion  # noqa: E402
from fixtrace.methods.rise import Rise  # noqa: E402
from fixtrace.methods.scorecam import ScoreCAM  # noqa: E402
from fixtrace.methods.smoothgrad import SmoothGrad  # noqa: E402
from fixtrace.methods.xgradcam import XGradCAM  # noqa: E402

__all__ = [
    "CAM",
    "METHODS",
    "Deconvnet",
    "Extrapolated",
    "Fixations",
    "GradCAM",
    "GradCAMPlusPlus",
    "GradualExtrapolation",
    "GuidedBackprop",
    "GuidedGradCAM",
    "IntegratedGradients",
    "LayerCAM",
    "Maps",
    "Method",
    "Occlusion",
    "Parameter",
    "Rise",
    "Saliency",
    "ScoreCAM",
    "SmoothGrad",
    "XGradCAM",
    "method_names",
    "register",
]
