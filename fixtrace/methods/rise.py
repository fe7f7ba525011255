"""RISE (Petsiuk et al. 2018): the class probability under random smooth masks, averaged per pixel."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from fixtrace.methods.base import Maps, Method, Parameter, register
from fixtrace.methods.perturb import masked, spans, target_scores
from fixtrace.methods.resize import upsample
from fixtrace.runtime.run import Run


class RiseMasks:
    """RISE's masks: binary ``cell`` x ``cell`` grids (1 with probability ``p``), upsampled
    bilinearly to (cell + 1) x ceil(H / cell) rows (and columns alike), each cropped to H x W at
    a random shift below one cell.

    The grids and shifts are drawn at once from ``numpy.random.default_rng(seed)`` (a few bytes
    per mask), so a seed gives the same masks however they are sliced; full-size masks are made
    per slice.

    Args:
        count, cell, p, seed: the method's parameters.
        size: (H, W) of the model input.
    """

    def __init__(self, count: int, cell: int, p: float, size: tuple[int, int], seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.size = size
        self.cells = tuple(-(-side // cell) for side in size)  # one cell's size in pixels, rounded up
        self.grids = (rng.random((count, cell, cell)) < p).astype(np.float32)
        self.shifts = np.stack([rng.integers(0, c, count) for c in self.cells], axis=1)

    def __len__(self) -> int:
        return len(self.grids)

    def __getitem__(self, span: slice) -> np.ndarray:
        """float32 (k, H, W) masks in [0, 1] of a slice."""
        cell = self.grids.shape[1]
        up = upsample(self.grids[span], ((cell + 1) * self.cells[0], (cell + 1) * self.cells[1]), "bilinear")
        height, width = self.size
        return np.stack([m[r : r + height, c : c + width] for m, (r, c) in zip(up, self.shifts[span])])


@register
class Rise(Method):
    """Petsiuk et al. 2018: sum_i P(target | x * M_i) M_i / (N p), the paper's normalisation
    (DIANNA's too; OpenVINO XAI scales the unnormalised sum to [0, 1], the same map up to scale).

    The masks multiply the model's input, not the photo's pixels: under mean-normalising presets
    a masked pixel becomes the mean colour (grey), not black; under ``raw`` it becomes 0.
    """

    name = "rise"
    summary = "class probability under random smooth masks, averaged per pixel (Petsiuk et al. 2018)"
    rank = 31
    parameters: ClassVar[dict[str, Parameter]] = {
        "masks": Parameter(1000, "random masks (forwards per photo)", int, 1, 1_000_000),
        "cell": Parameter(8, "masks are cell x cell grids upsampled to the input", int, 1, 1024),
        "p": Parameter(0.5, "probability that a grid cell is kept", float, 0.01, 1.0),
        "seed": Parameter(0, "seed of the random masks (the same seed gives the same map)", int, 0, 2**63 - 1),
    }

    def masks(self, size: tuple[int, int]) -> RiseMasks:
        """The masks for a (H, W) input."""
        return RiseMasks(self.params["masks"], self.params["cell"], self.params["p"], size, self.params["seed"])

    def explain(self, run: Run, targets: list[int]) -> Maps:
        masks = self.masks(run.grid)
        saliency = np.zeros((run.size, *run.grid))
        for start, stop in spans(len(masks), run.size):
            chunk = masks[start:stop]
            probs = target_scores(run, targets, masked(run.batch, chunk, run.channels_first), probabilities=True)
            saliency += np.tensordot(probs, chunk, axes=(1, 0))
        return Maps((saliency / (len(masks) * self.params["p"])).astype(np.float32), relative=True)
