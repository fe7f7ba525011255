"""CNN Fixations (Mopuri, Garg, Babu, IEEE TIP 2019) as a method: the backward walk from the
class neuron to the input pixels, whose points are blurred into the heat map."""

from __future__ import annotations

from typing import Any

import numpy as np

from fixtrace.explanation import PerLayer
from fixtrace.fixations import BacktrackPlan, FixationOptions, FixationSet
from fixtrace.fixations.options import CONV_LOCATIONS, DEFAULT_CONV_LOCATION, DEFAULT_RULE, RULES
from fixtrace.fixations.walk import BacktrackResult
from fixtrace.methods.base import Maps, Method, Parameter, register
from fixtrace.methods.cam import last_spatial_layer
from fixtrace.model.layer_graph import LayerGraph
from fixtrace.model.layout import channel_axis, feature_layouts
from fixtrace.runtime.run import Run
from fixtrace.runtime.tensors import Tensors
from fixtrace.runtime.threads import thread_budget


@register
class Fixations(Method):
    """The discriminative neurons, unravelled layer by layer down to pixel fixations.

    ``explain`` gives, per photo, the input pixels reached with their counts (``points``), the
    count map on the input grid, the fixations on every tensor reached (``per_layer``) and,
    for Gradual Extrapolation, the counts on the last spatial map (channels summed).
    """

    name = "fixations"
    summary = "CNN Fixations: the class neuron's discriminative neurons unravelled down to pixels (Mopuri et al. 2019)"
    coarse_maps = True
    parameters = {
        "conv_location": Parameter(
            DEFAULT_CONV_LOCATION,
            "where a conv fixation lands in its window; auto: coarse-centre under a global-pool head, centre under a flattened one",
            choices=CONV_LOCATIONS,
        ),
        "rule": Parameter(
            DEFAULT_RULE,
            "how the dense and global-pool steps pass counts down: authors (the paper), weighted or spread (by contribution); "
            "auto: spread under a global-pool head, authors under a flattened one",
            choices=RULES,
        ),
    }
    rank = 0

    def __init__(self, graph: LayerGraph, logits: str, **options: Any) -> None:
        super().__init__(graph, logits, **options)
        self.plan = BacktrackPlan(
            graph,
            FixationOptions(conv_location=self.params["conv_location"], rule=self.params["rule"]),
            logits=logits,
            shapes=self.shapes,
        )
        self.options = self.plan.options
        self.needs = set(self.plan.needs)
        self.touched = set(self.plan.touched)
        self.recipes = dict(self.plan.recipes)
        #: The tensor whose counts are the coarse map (set by ``prepare_coarse``).
        self.coarse_layer: str | None = None
        self.coarse_layout = "NCHW"

    def prepare_coarse(self) -> None:
        super().prepare_coarse()
        self.coarse_layer = last_spatial_layer(self.graph, self.shapes)
        self.coarse_layout = feature_layouts(self.graph)[self.coarse_layer]

    def check(self, tensors: Tensors) -> None:
        self.plan.check(tensors)

    def explain(self, run: Run, targets: list[int]) -> Maps:
        tensors = run.tensors
        n, n_classes = run.size, int(np.prod(tensors.shape(self.logits)[1:]))
        walk = self.plan.run(run.backend.start([b * n_classes + targets[b] for b in range(n)]), tensors, thread_budget())
        assert walk.input is not None  # the walk always ends on the input
        arrived = walk.input.host()
        per_item = int(np.prod(run.batch.shape[1:]))
        points = [self._input_points(arrived.item(b, per_item), run) for b in range(n)]
        maps = np.zeros((n, *run.grid), dtype=np.float32)
        for b, (rows, cols, counts) in enumerate(points):
            maps[b, rows, cols] = counts
        coarse = self._counts_on(self.coarse_layer, self.coarse_layout, walk, tensors, n) if self.coarse_layer else None
        per_layer = self._layers(walk, tensors, n)
        return Maps(maps, coarse, points, per_layer, heat_from_points=True)

    def settings(self) -> dict[str, Any]:
        head = "global pool" if self.plan.pooled_head else "flattened map"
        return {"conv_location": self.options.conv_location, "rule": self.options.rule, "head": head}

    def _input_points(self, fixations: FixationSet, run: Run) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One photo's input fixations (host) -> (rows, cols, counts), one entry per input pixel (channels merged)."""
        positions = fixations.positions((1, *run.batch.shape[1:]))
        rows, cols = (positions[:, 2], positions[:, 3]) if run.channels_first else (positions[:, 1], positions[:, 2])
        width = run.grid[1]
        unique, inverse = np.unique(rows * width + cols, return_inverse=True)
        counts = np.bincount(inverse, weights=fixations.count).astype(np.float64)
        return unique // width, unique % width, counts

    @staticmethod
    def _counts_on(layer: str, layout: str, walk: BacktrackResult, tensors: Tensors, n: int) -> np.ndarray:
        """(N, h, w): fixation counts on ``layer``, channels summed."""
        shape = tensors.shape(layer)
        counts = np.zeros(int(np.prod(shape)), dtype=np.float32)
        reached = walk.per_tensor.get(layer)
        if reached is not None:
            own = reached.host()
            counts[own.index] = own.count
        return counts.reshape(shape).sum(axis=channel_axis(layout))[:n]

    def _layers(self, walk: BacktrackResult, tensors: Tensors, n: int) -> list[PerLayer]:
        """Per photo, the fixations on every tensor the walk reached (records made when read)."""
        heads = {}
        for name in walk.per_tensor:
            node = self.graph.producer.get(name)
            heads[name] = (node.name if node else "", node.op_type if node else "Input", (1, *tensors.shape(name)[1:]))
        return [PerLayer(heads, walk.per_tensor, b) for b in range(n)]
