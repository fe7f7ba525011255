"""Deletion and insertion curves (Petsiuk et al., RISE 2018): does the map rank pixels by importance?

Deletion removes the photo's pixels most salient first and follows the class probability down
(a good map makes it fall fast: low area under the curve). Insertion starts from a blurred photo
and puts the original pixels back in the same order (a good map makes it rise fast: high area).
All the perturbed photos of one curve go through the model as batches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from fixtrace.errors import OptionError
from fixtrace.metrics.localization import check_map
from fixtrace.validate import integer

#: Insertion starts from the photo blurred with this sigma, as a fraction of its short side
#: (RISE: sigma 5 px on 224 px photos).
BLUR_SIGMA = 5 / 224

Classify = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class PerturbationCurves:
    """Class probability as a growing share of the photo's pixels is deleted or inserted.

    Attributes:
        fractions: (steps + 1,) share of pixels changed, 0 to 1.
        deletion: (steps + 1,) probability after deleting that share (blacked out).
        insertion: (steps + 1,) probability after inserting that share into the blurred photo.
    """

    fractions: np.ndarray
    deletion: np.ndarray
    insertion: np.ndarray

    @property
    def deletion_auc(self) -> float:
        """Area under the deletion curve (lower is better)."""
        return area(self.fractions, self.deletion)

    @property
    def insertion_auc(self) -> float:
        """Area under the insertion curve (higher is better)."""
        return area(self.fractions, self.insertion)


def area(x: np.ndarray, y: np.ndarray) -> float:
    """Trapezoidal area under y(x)."""
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2.0)


def salience_order(heat: np.ndarray, seed: int = 0) -> np.ndarray:
    """Flat pixel indices, most salient first; equal values in a seeded random order (so that a
    flat region is not removed top to bottom).
    """
    ties = np.random.default_rng(seed).permutation(heat.size)
    return np.lexsort((ties, -heat.ravel().astype(np.float64)))


def perturbation_curves(
    classify: Classify, photo: np.ndarray, heat: np.ndarray, target: int, steps: int = 32, seed: int = 0, batch_size: int = 17
) -> PerturbationCurves:
    """Deletion and insertion curves of one map.

    Args:
        classify: uint8 photos (n, H, W, 3) -> class probabilities (n, classes).
        photo: uint8 (H, W, 3).
        heat: (H, W) map on the photo.
        target: the class whose probability is followed.
        steps: number of equal shares of pixels changed between 0 and all.
        seed: order of equally salient pixels.
        batch_size: perturbed photos per call of ``classify``.

    Returns:
        The two curves.

    Raises:
        OptionError: the map is not finite and 2-D, differs from the photo in size, or steps < 1.
    """
    heat = check_map(heat)
    if heat.shape != photo.shape[:2]:
        raise OptionError(f"the map is {heat.shape[1]}x{heat.shape[0]} but the photo {photo.shape[1]}x{photo.shape[0]}")
    steps = integer("steps", steps, 1, flag="--steps")
    order = salience_order(heat, seed)
    flat_rank = np.empty(order.size, dtype=np.int64)
    flat_rank[order] = np.arange(order.size)
    rank = flat_rank.reshape(heat.shape)
    fractions = np.linspace(0.0, 1.0, steps + 1)
    cut = np.round(fractions * heat.size).astype(np.int64)
    sigma = BLUR_SIGMA * min(heat.shape)
    blurred = ndimage.gaussian_filter(photo.astype(np.float32), (sigma, sigma, 0)).round().astype(np.uint8)
    curves = []
    for start, replacement in ((photo, np.uint8(0)), (blurred, photo)):
        curve = []
        for first in range(0, steps + 1, batch_size):
            changed = (rank[None] < cut[first : first + batch_size, None, None])[..., None]
            curve.append(classify(np.where(changed, replacement, start[None]))[:, target])
        curves.append(np.concatenate(curve).astype(np.float64))
    return PerturbationCurves(fractions, curves[0], curves[1])
