"""SmoothGrad (Smilkov et al. 2017) as Captum's ``NoiseTunnel(Saliency)`` with ``nt_type="smoothgrad"``."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from fixtrace.methods.base import Maps, Parameter, register
from fixtrace.methods.gradient import CopiesGradient
from fixtrace.methods.resize import spatial_axes
from fixtrace.render.display import GRADIENT_DISPLAY
from fixtrace.runtime.run import Run


@register
class SmoothGrad(CopiesGradient):
    """Smilkov et al. 2017: the mean of |d score / d x| over ``samples`` noisy copies x + N(0, s^2)
    of the photo, s = ``noise`` x (max(x) - min(x)) of that photo's input (the paper's noise level;
    Captum's ``NoiseTunnel(Saliency(model)).attribute(x, nt_type="smoothgrad", stdevs=s)`` with
    the same draws). The map is the maximum over colour channels, as saliency's: ``noise=0`` gives
    the saliency map.

    The noise is seeded: sample j is ``numpy.random.default_rng([seed, j])``'s standard normals
    drawn as (C, H, W) and laid out as the model's input, shared by the photos of a batch (each
    scaled by its own s), so a photo's map depends neither on its batch nor on the layout.
    """

    name = "smoothgrad"
    display = GRADIENT_DISPLAY  # pixel-level maps: clipped at the 99th percentile for display
    summary = "|d score / d pixel| averaged over noisy copies, max over colours (Smilkov et al. 2017)"
    rank = 14
    parameters: ClassVar[dict[str, Parameter]] = {
        "samples": Parameter(50, "noisy copies per photo (gradient walks per photo)", int, 1, 10_000),
        "noise": Parameter(0.15, "noise standard deviation, as a fraction of the photo's input range", float, 0.0, 1.0),
        "seed": Parameter(0, "seed of the noise (the same seed gives the same map)", int, 0, 2**63 - 1),
    }

    def noise(self, sample: int, shape: tuple[int, ...]) -> np.ndarray:
        """float32 standard normals of sample ``sample`` for one input of ``shape`` (the model's layout)."""
        channels_first = self.graph.image_input.layout == "NCHW"
        chw = shape if channels_first else (shape[2], shape[0], shape[1])
        draws = np.random.default_rng([self.params["seed"], sample]).standard_normal(chw, dtype=np.float32)
        return draws if channels_first else draws.transpose(1, 2, 0)

    def stdevs(self, batch: np.ndarray) -> np.ndarray:
        """float32 (N,) noise standard deviation of each photo."""
        flat = batch.reshape(len(batch), -1)
        return (self.params["noise"] * (flat.max(axis=1) - flat.min(axis=1))).astype(np.float32)

    def noisy(self, run: Run, index: np.ndarray) -> np.ndarray:
        """The noisy copies ``index`` (photo-major: copy j of photo n is n * samples + j)."""
        samples = self.params["samples"]
        photos, drawn = index // samples, index % samples
        scale = self.stdevs(run.batch)[photos].reshape(-1, *[1] * (run.batch.ndim - 1))
        noise = np.stack([self.noise(int(j), run.batch.shape[1:]) for j in drawn])
        return run.batch[photos].astype(np.float32) + scale * noise

    def attributions(self, run: Run, targets: list[int]) -> np.ndarray:
        """float32 (N, ...) mean absolute gradients in the model's input layout."""
        samples = self.params["samples"]
        total = np.zeros(run.batch.shape, np.float64)

        def make(index: np.ndarray) -> tuple[np.ndarray, list[int]]:
            return self.noisy(run, index), [targets[p] for p in index // samples]

        for index, grads in self.gradients(run, len(run.batch) * samples, make):
            photos = index // samples
            for photo in np.unique(photos):
                total[photo] += np.abs(grads[photos == photo]).sum(axis=0)
        return (total / samples).astype(np.float32)

    def explain(self, run: Run, targets: list[int]) -> Maps:
        return Maps(self.attributions(run, targets).max(axis=spatial_axes(self.graph)[0]))
