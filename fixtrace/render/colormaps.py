"""Colour maps as 256-entry lookup tables (no matplotlib): jet, viridis, inferno, gray, and the
diverging blue-white-red map of signed views.

viridis and inferno come from the degree-6 polynomial fits to the published maps (Matt Zucker's
"fitting polynomials to matplotlib colormaps", CC0, fitted to BIDS/colormap's data, itself CC0),
evaluated here at 256 points; they stay within about 1/255 of the published tables.
"""

from __future__ import annotations

import functools

import numpy as np

#: The colour maps the overlay offers (``--colormap``); jet is the default.
COLORMAPS = ("jet", "viridis", "inferno", "gray")
#: Signed views draw negatives blue and positives red, through white at 0.
DIVERGING = "blue-red"
#: Entries per table.
SIZE = 256

#: Coefficients c0..c6 (rows) of r, g, b (columns): colour(t) = sum c_k t^k.
_POLYNOMIALS = {
    "viridis": (
        (0.2777273272234177, 0.005407344544966578, 0.3340998053353061),
        (0.1050930431085774, 1.404613529898575, 1.384590162594685),
        (-0.3308618287255563, 0.214847559468213, 0.09509516302823659),
        (-4.634230498983486, -5.799100973351585, -19.33244095627987),
        (6.228269936347081, 14.17993336680509, 56.69055260068105),
        (4.776384997670288, -13.74514537774601, -65.35303263337234),
        (-5.435455855934631, 4.645852612178535, 26.3124352495832),
    ),
    "inferno": (
        (0.0002189403691192265, 0.001651004631001012, -0.01948089843709184),
        (0.1065134194856116, 0.5639564367884091, 3.932712388889277),
        (11.60249308247187, -3.972853965665698, -15.9423941062914),
        (-41.70399613139459, 17.43639888205313, 44.35414519872813),
        (77.162935699427, -33.40235894210092, -81.80730925738993),
        (-71.31942824499214, 32.62606426397723, 73.20951985803202),
        (25.13112622477341, -12.24266895238567, -23.07032500287172),
    ),
}
#: The diverging map's ends (a blue and a red of equal lightness) and its white middle.
_BLUE, _WHITE, _RED = (33, 102, 172), (255, 255, 255), (178, 24, 43)


def jet(values: np.ndarray) -> np.ndarray:
    """The classic 'jet' colour map (dark blue -> cyan -> yellow -> dark red).

    Args:
        values: array in [0, 1].

    Returns:
        uint8 array of shape values.shape + (3,).
    """
    v = np.clip(values, 0.0, 1.0).astype(np.float32)[..., None]
    centres = np.array([0.75, 0.5, 0.25], dtype=np.float32)  # where red, green, blue peak
    rgb = np.clip(1.5 - np.abs(4.0 * (v - centres)), 0.0, 1.0)
    return (rgb * 255.0 + 0.5).astype(np.uint8)


@functools.cache
def table(name: str) -> np.ndarray:
    """The (SIZE, 3) uint8 table of a colour map of ``COLORMAPS`` or ``DIVERGING`` (read-only).

    Raises:
        KeyError: an unknown name (the options are checked before this).
    """
    t = np.linspace(0.0, 1.0, SIZE)
    if name == "jet":
        rgb = jet(t)
    elif name == "gray":
        rgb = np.repeat((t * 255.0 + 0.5).astype(np.uint8)[:, None], 3, axis=1)
    elif name in _POLYNOMIALS:
        c = np.asarray(_POLYNOMIALS[name])
        powers = t[:, None] ** np.arange(len(c))[None, :]
        rgb = (np.clip(powers @ c, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    elif name == DIVERGING:
        ends = np.array([_BLUE, _WHITE, _RED], dtype=np.float64)
        rgb = np.stack([np.interp(t, [0.0, 0.5, 1.0], ends[:, k]) for k in range(3)], axis=1)
        rgb = (rgb + 0.5).astype(np.uint8)
    else:
        raise KeyError(name)
    rgb.setflags(write=False)
    return rgb


def colours(name: str, values: np.ndarray) -> np.ndarray:
    """``values`` in [0, 1] coloured by a map, interpolating its table linearly.

    Returns:
        uint8 array of shape values.shape + (3,).
    """
    rgb = table(name).astype(np.float32)
    position = np.clip(np.asarray(values, dtype=np.float32), 0.0, 1.0) * (SIZE - 1)
    low = np.minimum(position.astype(np.intp), SIZE - 2)
    weight = (position - low)[..., None]
    return (rgb[low] * (1 - weight) + rgb[low + 1] * weight + 0.5).astype(np.uint8)


def luminance(rgb: np.ndarray) -> np.ndarray:
    """Relative luminance (ITU-R BT.709 weights on linearised sRGB), in [0, 1]."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return linear @ np.array([0.2126, 0.7152, 0.0722])
