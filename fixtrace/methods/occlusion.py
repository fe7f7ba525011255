"""Occlusion (Zeiler & Fergus 2014): how much the class score drops when a window of the input is
covered, as Captum's ``Occlusion`` computes it."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from fixtrace.errors import OptionError
from fixtrace.methods.base import Maps, Method, Parameter, register
from fixtrace.methods.perturb import masked, spans, target_scores
from fixtrace.model.layer_graph import LayerGraph
from fixtrace.runtime.run import Run
from fixtrace.runtime.tensors import Tensors


def window_starts(size: int, patch: int, stride: int) -> np.ndarray:
    """Where windows start on one axis, Captum's rule: ceil((size - patch) / stride) + 1 windows
    at 0, stride, 2 * stride, ...; the last one is cut at the edge when it overhangs.

    Raises:
        OptionError: the patch is larger than the axis.
    """
    if patch > size:
        raise OptionError(f"occlusion's patch ({patch} px) is larger than the model input's side ({size} px)")
    return np.arange(-(-(size - patch) // stride) + 1) * stride


@register
class Occlusion(Method):
    """Zeiler & Fergus 2014, Captum's definition: each window of ``patch`` x ``patch`` pixels
    (every colour channel) set to ``fill``, every ``stride`` pixels; a pixel's value is the mean,
    over the windows covering it, of the raw target score's drop ``score(x) - score(occluded x)``.

    Raises:
        OptionError: a stride larger than the patch (pixels between windows), or a patch larger
            than the input.
    """

    name = "occlusion"
    summary = "drop of the class score when a sliding window is covered (Zeiler & Fergus 2014)"
    rank = 30
    parameters: ClassVar[dict[str, Parameter]] = {
        "patch": Parameter(16, "side of the occluding window, in input pixels", int, 1, 4096),
        "stride": Parameter(8, "step between windows, in input pixels (at most the patch)", int, 1, 4096),
        "fill": Parameter(
            0.0,
            "value written into the window, in the model's input space (0: the mean colour under mean-normalising presets)",
            float,
        ),
    }

    def __init__(self, graph: LayerGraph, logits: str, **options: Any) -> None:
        super().__init__(graph, logits, **options)
        self.patch: int = self.params["patch"]
        self.stride: int = self.params["stride"]
        if self.stride > self.patch:
            raise OptionError(
                f"occlusion's stride ({self.stride}) is larger than its patch ({self.patch}): "
                f"pixels between windows would get no value"
            )

    def check(self, tensors: Tensors) -> None:
        for side in self.input_grid(tensors):
            window_starts(side, self.patch, self.stride)

    def corners(self, grid: tuple[int, int]) -> list[tuple[int, int]]:
        """(row, col) of every window's top-left pixel on a (H, W) input.

        Raises:
            OptionError: the patch is larger than the input.
        """
        rows, cols = (window_starts(side, self.patch, self.stride) for side in grid)
        return [(int(r), int(c)) for r in rows for c in cols]

    def drops(self, run: Run, targets: list[int], corners: list[tuple[int, int]]) -> np.ndarray:
        """float64 (N, windows): the target score's drop when each window is occluded."""
        base = run.scores[np.arange(run.size), targets]
        drops = np.empty((run.size, len(corners)))
        p = self.patch
        for start, stop in spans(len(corners), run.size):
            keep = np.ones((stop - start, *run.grid), np.float32)
            for k, (r, c) in enumerate(corners[start:stop]):
                keep[k, r : r + p, c : c + p] = 0
            copies = masked(run.batch, keep, run.channels_first, self.params["fill"])
            drops[:, start:stop] = base[:, None] - target_scores(run, targets, copies)
        return drops

    def explain(self, run: Run, targets: list[int]) -> Maps:
        corners = self.corners(run.grid)
        drops = self.drops(run, targets, corners)
        total = np.zeros((run.size, *run.grid))
        covered = np.zeros(run.grid)
        p = self.patch
        for k, (r, c) in enumerate(corners):
            total[:, r : r + p, c : c + p] += drops[:, k, None, None]
            covered[r : r + p, c : c + p] += 1
        return Maps((total / covered).astype(np.float32))
