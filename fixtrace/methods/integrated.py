"""Integrated Gradients (Sundararajan et al. 2017) as Captum's ``IntegratedGradients`` computes it."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from fixtrace.errors import OptionError
from fixtrace.images.preprocess import preprocess
from fixtrace.methods.base import Maps, Parameter, register
from fixtrace.methods.gradient import CopiesGradient
from fixtrace.methods.resize import spatial_axes
from fixtrace.model.layer_graph import LayerGraph
from fixtrace.render.display import GRADIENT_DISPLAY
from fixtrace.runtime.run import Run

#: Captum's approximation methods (``riemann_left`` etc.; ``_`` or ``-`` both read).
RULES = ("gausslegendre", "riemann-left", "riemann-right", "riemann-middle", "riemann-trapezoid")


def quadrature(rule: str, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """(alphas, step sizes) of ``steps`` points on [0, 1], as Captum's ``approximation_parameters``.

    Raises:
        OptionError: a Riemann rule with one step.
    """
    if rule == "gausslegendre":
        points, weights = np.polynomial.legendre.leggauss(steps)
        return 0.5 * (1 + points), 0.5 * weights
    if steps < 2:
        raise OptionError(f"integrated-gradients's steps must be at least 2 with rule {rule}, not {steps}")
    sizes = np.full(steps, 1 / steps)
    if rule == "riemann-trapezoid":
        sizes[[0, -1]] /= 2
        return np.linspace(0, 1, steps), sizes
    low, high = {"riemann-left": (0, 1 - 1 / steps), "riemann-middle": (0.5 / steps, 1 - 0.5 / steps)}.get(rule, (1 / steps, 1))
    return np.linspace(low, high, steps), sizes


@register
class IntegratedGradients(CopiesGradient):
    """Sundararajan et al. 2017, Captum's ``IntegratedGradients``: (x - x') times the gradient of
    the target score averaged along the straight path from the baseline x' to the photo x, at
    ``steps`` points placed and weighted by ``rule`` (Captum's default: Gauss-Legendre).

    Baselines, in the model's input space: ``zero`` is the all-zero tensor (Captum's default;
    under a mean/std preset such as imagenet that is the mean colour, not black); ``black`` is a
    black photo through the preset ((0 - mean) / std per channel; the paper's black image). Under
    ``raw`` both are 0.

    The map is |sum over colour channels| of the attributions: what Captum's
    ``visualize_image_attr`` draws by default (``heat_map``, ``absolute_value``).
    ``attributions`` gives the signed per-channel values, as Captum's ``attribute``.
    """

    name = "integrated-gradients"
    display = GRADIENT_DISPLAY  # pixel-level maps: clipped at the 99th percentile for display
    summary = "(x - baseline) x the gradient averaged on the path from the baseline (Sundararajan et al. 2017)"
    rank = 13
    parameters: ClassVar[dict[str, Parameter]] = {
        "baseline": Parameter(
            "zero", "the path's start: zero (the all-zero input) or black (a black photo)", choices=("zero", "black")
        ),
        "steps": Parameter(50, "points on the path (gradient walks per photo)", int, 1, 10_000),
        "rule": Parameter("gausslegendre", "where the points sit and how they are weighted (Captum's method)", choices=RULES),
    }

    def __init__(self, graph: LayerGraph, logits: str, **options: Any) -> None:
        super().__init__(graph, logits, **options)
        self.alphas, self.sizes = quadrature(self.params["rule"], self.params["steps"])

    def baseline(self, run: Run) -> np.ndarray:
        """float32 (1, ...) baseline shaped as one model input."""
        if self.params["baseline"] == "black":
            black = np.zeros((*run.grid, 3), np.uint8)
            return preprocess(black, self.graph.image_input, run.preset)[0][None]
        return np.zeros((1, *run.batch.shape[1:]), np.float32)

    def attributions(self, run: Run, targets: list[int]) -> np.ndarray:
        """float32 (N, ...) attributions in the model's input layout, signed, per channel."""
        x = run.batch.astype(np.float32)
        start = self.baseline(run)
        delta = x - start
        steps = len(self.alphas)
        alphas = self.alphas.astype(np.float32).reshape(-1, *[1] * (x.ndim - 1))
        total = np.zeros(x.shape, np.float64)

        def make(index: np.ndarray) -> tuple[np.ndarray, list[int]]:
            photos = index // steps
            return start + alphas[index % steps] * delta[photos], [targets[p] for p in photos]

        for index, grads in self.gradients(run, len(x) * steps, make):
            photos = index // steps
            for photo in np.unique(photos):
                chosen = photos == photo
                total[photo] += np.tensordot(self.sizes[index[chosen] % steps], grads[chosen], axes=1)
        return (total * delta).astype(np.float32)

    def explain(self, run: Run, targets: list[int]) -> Maps:
        channel = spatial_axes(self.graph)[0]
        return Maps(np.abs(self.attributions(run, targets).sum(axis=channel)))
