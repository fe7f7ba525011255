"""The base of every map method: prepared once per model, then maps for a batch and its classes."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from fixtrace.errors import FixtraceError
from fixtrace.runtime.tensors import Tensors
from fixtrace.gradients import GradientPlan
from fixtrace.model.layer_graph import LayerGraph


class MapMethod(ABC):
    """A method that turns one forward run into one map per photo on the model's input grid.

    Args:
        graph: the layer graph.
        logits: the class-score tensor (before any Softmax).
        layer: the tensor a layer method reads (None: its default).
        shapes: tensor shapes at the model's input size (layer methods check and pick layers with them).
        upsample_mode: how layer maps reach the input grid: ``"bilinear"`` or ``"nearest"``.

    Attributes:
        needs: tensors the session must keep for ``attributions``.
    """

    name = ""
    #: Whether ``coarse`` gives layer-grid maps (what Gradual Extrapolation sharpens).
    coarse_maps = False

    def __init__(self, graph: LayerGraph, logits: str, layer: str | None = None,
                 shapes: dict[str, tuple[int, ...]] | None = None, upsample_mode: str = "bilinear") -> None:
        self.graph = graph
        self.logits = logits
        self.layer = layer
        self.shapes = shapes or {}
        self.upsample_mode = upsample_mode
        self.needs: set[str] = set()
        #: Computed tensors the method's rules touch (their shapes must be known at run time).
        self.touched: set[str] = set()

    def seed(self, tensors: Tensors, targets: list[int]) -> np.ndarray:
        """d(score)/d(logits): one-hot at each photo's target class."""
        shape = tensors.shape(self.logits)
        seed = np.zeros((shape[0], int(np.prod(shape[1:]))), dtype=np.float32)
        seed[np.arange(shape[0]), targets] = 1.0
        return seed.reshape(shape)

    @abstractmethod
    def attributions(self, tensors: Tensors, targets: list[int]) -> np.ndarray:
        """The method's raw output for a batch: (N, C, H, W) on the input, or (N, h, w) on a layer.

        Args:
            tensors: the run's values (at least ``needs``).
            targets: one class per photo.
        """

    def maps(self, tensors: Tensors, targets: list[int]) -> np.ndarray:
        """float32 (N, H, W) maps on the model input's grid, for display (not normalised)."""
        return self.attributions(tensors, targets)

    def coarse(self, tensors: Tensors, targets: list[int]) -> np.ndarray:
        """(N, h, w) non-negative maps on a layer's grid, for Gradual Extrapolation.

        Raises:
            FixtraceError: the method makes input-resolution maps, which there is nothing to sharpen in.
        """
        raise FixtraceError(self.no_coarse_maps())

    def no_coarse_maps(self) -> str:
        """Why Gradual Extrapolation cannot sharpen this method's maps."""
        return (f"{self.name} maps are already at the input's resolution: Gradual Extrapolation sharpens coarse maps "
                "(fixations, cam, gradcam)")

    def gradient_plan(self, mode: str, bottom: str | None = None) -> GradientPlan:
        """A gradient walk from the logits (down to ``bottom``), whose needs join this method's."""
        plan = GradientPlan(self.graph, self.logits, mode, bottom)
        self.needs |= plan.needs
        self.touched |= plan.touched
        return plan


def spatial_axes(graph: LayerGraph) -> tuple[int, int, int]:
    """(channel axis, row axis, col axis) of the image input's layout."""
    return (1, 2, 3) if graph.image_input.layout == "NCHW" else (3, 1, 2)


def upsample(maps: np.ndarray, size: tuple[int, int], mode: str = "bilinear") -> np.ndarray:
    """(N, h, w) maps resized to (N, H, W) with torch's ``interpolate`` conventions.

    Args:
        maps: the maps.
        size: (H, W).
        mode: ``"bilinear"`` (align_corners=False: edges clamped) or ``"nearest"``.
    """
    n, h, w = maps.shape
    height, width = size
    if mode == "nearest":
        rows = np.minimum((np.arange(height) * (h / height)).astype(np.int64), h - 1)
        cols = np.minimum((np.arange(width) * (w / width)).astype(np.int64), w - 1)
        return maps[:, rows][:, :, cols].astype(np.float32)
    if mode != "bilinear":
        raise ValueError(f"upsample mode must be bilinear or nearest, not {mode!r}")

    def taps(out: int, src: int):
        pos = np.maximum((np.arange(out) + 0.5) * (src / out) - 0.5, 0.0)
        lo = np.minimum(np.floor(pos).astype(np.int64), src - 1)
        hi = np.minimum(lo + 1, src - 1)
        return lo, hi, (pos - lo).astype(np.float32)

    r0, r1, fr = taps(height, h)
    c0, c1, fc = taps(width, w)
    top = maps[:, r0] * (1 - fr)[None, :, None] + maps[:, r1] * fr[None, :, None]
    return (top[:, :, c0] * (1 - fc)[None, None, :] + top[:, :, c1] * fc[None, None, :]).astype(np.float32)
