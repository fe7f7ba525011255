"""How a map is shown: each method's display defaults (``Display``, declared on the method class),
the user's choices for the pictures (``Style``), the white point of percentile clipping, and the
RGB gradient picture.

Only the pictures change (``overlay.png``, ``heatmap.png``, the audit's ``overlay.jpg``):
``heatmap.npy`` stays the map scaled to a maximum of 1, and the box and the metrics read that.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from fixtrace import validate
from fixtrace.render.colormaps import COLORMAPS

#: What a picture shows: the method's own view (``auto``), the map as it is (``abs``: magnitudes,
#: or the positive part), or the signed input gradient (``signed``: negatives blue, positives red;
#: methods whose display has ``signed``).
VIEWS = ("auto", "abs", "signed")
#: Samples a white point is taken from at most (a larger map is read on a stride).
PERCENTILE_SAMPLES = 1 << 17


@dataclass(frozen=True)
class Display:
    """A method's display defaults (``Method.display``).

    Attributes:
        clip: percentile of the map's pixels, inside what the model saw, shown at the top of the
            colour scale (higher values too); 100 is the map's max (no clipping). Pixel-level
            gradient maps use 99: a few hot pixels otherwise make the rest near-invisible speckle.
        signed: the method keeps the signed input gradient (``Maps.gradients``), so a ``signed``
            view can be drawn.
        gradient_picture: write ``gradient.png``, the RGB gradient image as pytorch-grad-cam's
            ``deprocess_image`` shows it.
    """

    clip: float = 100.0
    signed: bool = False
    gradient_picture: bool = False


#: The defaults of pixel-level gradient maps.
GRADIENT_DISPLAY = Display(clip=99.0)
#: ... of those whose signed gradient is worth a look (guided backprop, deconvnet, guided Grad-CAM).
SIGNED_GRADIENT_DISPLAY = Display(clip=99.0, signed=True, gradient_picture=True)


@dataclass(frozen=True)
class Style:
    """The user's choices for the pictures of an explanation.

    Attributes:
        colormap: one of ``COLORMAPS`` (signed views use the diverging blue-red map).
        legend: draw the class, its probability, the method and a colour bar on the overlay.
        points: draw the fixation points (inliers filled white, outliers hollow red).
        view: one of ``VIEWS``.
        clip: the white point's percentile, in (0, 100] (None: the method's ``Display.clip``).
    """

    colormap: str = "jet"
    legend: bool = True
    points: bool = False
    view: str = "auto"
    clip: float | None = None

    @classmethod
    def checked(cls, **values: Any) -> Style:
        """A Style from keyword values, each checked.

        Raises:
            OptionError: an unknown keyword, or a bad value (naming the option and its flag).
        """
        validate.keywords(values, STYLE_OPTIONS, "the picture options")
        return Style().changed(**values)

    def changed(self, **values: Any) -> Style:
        """This style with some fields changed, each checked (None leaves a field as it is,
        but for ``clip``, where it means the method's).

        Raises:
            OptionError: an unknown keyword or a bad value.
        """
        validate.keywords(values, STYLE_OPTIONS, "the picture options")
        fields: dict[str, Any] = {}
        if values.get("colormap") is not None:
            fields["colormap"] = validate.choice("colormap", values["colormap"], COLORMAPS, "--colormap")
        for name in ("legend", "points"):
            if values.get(name) is not None:
                fields[name] = validate.boolean(name, values[name])
        if values.get("view") is not None:
            fields["view"] = validate.choice("view", values["view"], VIEWS, "--view")
        if "clip" in values:
            clip = values["clip"]
            fields["clip"] = None if clip is None else validate.number("clip", clip, 0.0, 100.0, "--clip", what="a percentile")
        return replace(self, **fields)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


#: The keywords of ``Style``.
STYLE_OPTIONS = ("colormap", "legend", "points", "view", "clip")


def white_point(heat: np.ndarray, percentile: float, window: tuple[int, int, int, int] | None = None) -> float:
    """The value of ``heat`` at a percentile of its pixels (of their magnitudes when signed),
    inside ``window`` (x0, y0, x1, y1; default: all of it); 1 for percentile 100.

    A large map is read on a stride, at most ``PERCENTILE_SAMPLES`` values. Returns the map's max
    magnitude when the percentile is 0 (more than ``100 - percentile`` % of the pixels are zero),
    and 1 for an all-zero map.
    """
    if percentile >= 100:
        return 1.0
    x0, y0, x1, y1 = window or (0, 0, heat.shape[1], heat.shape[0])
    inside = heat[y0:y1, x0:x1]
    stride = max(1, math.ceil(math.sqrt(inside.size / PERCENTILE_SAMPLES)))
    values = np.abs(inside[::stride, ::stride]).ravel()
    if values.size == 0:
        return 1.0
    k = min(values.size - 1, max(0, math.ceil(percentile / 100.0 * values.size) - 1))
    value = float(np.partition(values, k)[k])
    if value <= 0:
        value = float(values.max())
    return value if value > 0 else 1.0


def gradient_picture(gradient: np.ndarray) -> np.ndarray:
    """An input gradient as an image, as pytorch-grad-cam's ``deprocess_image`` draws it: minus
    its mean, divided by its std, times 0.1, plus 0.5, clipped to [0, 1].

    Args:
        gradient: (H, W, C) in RGB order (C = 3), or (H, W, 1) for grey models.

    Returns:
        uint8 (H, W, 3), or (H, W) for one channel.
    """
    g = np.asarray(gradient, dtype=np.float64)
    g = (g - g.mean()) / (g.std() + 1e-5) * 0.1 + 0.5
    picture = (np.clip(g, 0.0, 1.0) * 255.0).astype(np.uint8)  # np.uint8(img * 255): truncated, as there
    return picture[..., 0] if picture.shape[-1] == 1 else picture
