"""Explanation methods built on the gradient walk: saliency, guided backprop, deconvnet, CAM,
Grad-CAM, Guided Grad-CAM. Each is a short class on one base (``base.MapMethod``)."""

from fixtrace.methods.base import MapMethod
from fixtrace.methods.cam import CAM, GradCAM, GuidedGradCAM
from fixtrace.methods.extrapolation import GradualExtrapolation
from fixtrace.methods.gradient import Deconvnet, GuidedBackprop, Saliency

#: Method name (as on the command line) -> class.
METHODS: dict[str, type[MapMethod]] = {
    "saliency": Saliency, "guided-backprop": GuidedBackprop, "deconvnet": Deconvnet,
    "cam": CAM, "gradcam": GradCAM, "guided-gradcam": GuidedGradCAM,
}

__all__ = ["CAM", "Deconvnet", "GradCAM", "GradualExtrapolation", "GuidedBackprop", "GuidedGradCAM", "METHODS", "MapMethod", "Saliency"]
