"""The result of explaining one image for one class, and how it is written to disk."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from fixtrace.fixations.fixation_set import FixationSet
from fixtrace.render.box import BOX_THRESHOLDS, box_from_heatmap
from fixtrace.render.overlay import overlay


@dataclass(frozen=True)
class ClassScore:
    """One class of the model's prediction.

    Attributes:
        index: class index.
        name: class name.
        probability: softmax of the logits.
        logit: the score before the softmax.
    """

    index: int
    name: str
    probability: float
    logit: float


@dataclass(frozen=True)
class LayerFixations:
    """Fixations on one tensor of the graph, for one photo of the batch.

    Attributes:
        tensor: tensor name.
        node: name of the node that writes it ("" for the image input).
        op_type: that node's op type ("Input" for the image input).
        shape: the tensor's shape for one photo (batch of 1).
        fixations: the fixations on it for the whole batch (host or device arrays).
        item: which photo of the batch this is.
    """

    tensor: str
    node: str
    op_type: str
    shape: tuple[int, ...]
    fixations: FixationSet
    item: int = 0

    @cached_property
    def own(self) -> FixationSet:
        """This photo's fixations, on the host, re-based to a batch of one."""
        return self.fixations.item(self.item, int(np.prod(self.shape[1:], dtype=np.int64)))

    @property
    def positions(self) -> np.ndarray:
        """int64 (n, rank - 1) multi-indices of the fixations, batch dim dropped."""
        return self.own.positions(self.shape)[:, 1:]

    @property
    def counts(self) -> np.ndarray:
        """float64 (n,) counts."""
        return self.own.count

    def to_json(self) -> dict[str, Any]:
        return {
            "tensor": self.tensor, "node": self.node, "op_type": self.op_type, "shape": [1, *self.shape[1:]],
            "fixations": int(len(self.counts)), "total_count": float(self.counts.sum()),
            "positions": [[*map(int, p), float(c)] for p, c in zip(self.positions, self.counts)],
        }


@dataclass
class Explanation:
    """Where the model looked when it scored one class on one photo.

    Attributes:
        image: the photo, uint8 (H, W, 3).
        target: the explained class.
        top_classes: the model's best classes for this photo, best first.
        points: float64 (n, 2) fixations on the photo as (x, y) pixels, one per input pixel.
        counts: float64 (n,) how many fixations merged into each point.
        inliers: bool (n,) points kept by outlier removal (all True when it is off).
        heatmap: float32 (H, W) in [0, 1], the photo's size.
        per_layer: fixations on every tensor the walk reached, from the logits down.
        box_threshold: fraction of the heat map's max used to cut out the box.
        settings: the options that produced it.
        info: model, runtime providers, backend, versions and timings.
        input_map: for gradient methods, the map on the model input's grid (points are empty then).
    """

    image: np.ndarray
    target: ClassScore
    top_classes: list[ClassScore]
    points: np.ndarray
    counts: np.ndarray
    inliers: np.ndarray
    heatmap: np.ndarray
    per_layer: dict[str, LayerFixations]
    box_threshold: float = BOX_THRESHOLDS["fixations"]
    settings: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    input_map: np.ndarray | None = None

    @cached_property
    def box(self) -> tuple[int, int, int, int] | None:
        """(x0, y0, x1, y1) around the largest region over ``box_threshold`` x max; x1, y1 exclusive."""
        return box_from_heatmap(self.heatmap, self.box_threshold)

    def overlay(self, show_points: bool = False, show_box: bool = True) -> Image.Image:
        """The heat map blended on the photo, with the box (and optionally the points)."""
        return overlay(self.image, self.heatmap, self.box if show_box else None,
                       self.points[self.inliers] if show_points else None)

    def to_json(self) -> dict[str, Any]:
        """Everything but the pixels, JSON-ready."""
        return {
            "target": vars(self.target),
            "top_classes": [vars(c) for c in self.top_classes],
            "image_size": [int(self.image.shape[1]), int(self.image.shape[0])],
            "box": list(self.box) if self.box else None,
            "box_threshold": self.box_threshold,
            "points": [
                {"x": round(float(x), 2), "y": round(float(y), 2), "count": float(c), "inlier": bool(k)}
                for (x, y), c, k in zip(self.points, self.counts, self.inliers)
            ],
            "settings": self.settings,
            "info": self.info,
        }

    def save(self, directory: str | Path, layers: bool = False) -> list[Path]:
        """Write overlay.png, heatmap.png, heatmap.npy, fixations.json (and input_map.npy for
        gradient methods, per_layer.json for fixations when asked).

        Args:
            directory: created if missing.
            layers: also write the per-layer fixations.

        Returns:
            The paths written.
        """
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        paths = [out / "overlay.png", out / "heatmap.png", out / "heatmap.npy", out / "fixations.json"]
        self.overlay().save(paths[0])
        Image.fromarray((self.heatmap * 255.0 + 0.5).astype(np.uint8)).save(paths[1])
        np.save(paths[2], self.heatmap)
        paths[3].write_text(json.dumps(self.to_json(), indent=1), encoding="utf-8")
        if self.input_map is not None:
            paths.append(out / "input_map.npy")
            np.save(paths[-1], self.input_map)
        if layers and self.per_layer:
            paths.append(out / "per_layer.json")
            rows = [layer.to_json() for layer in self.per_layer.values()]
            paths[-1].write_text(json.dumps(rows), encoding="utf-8")
        return paths
