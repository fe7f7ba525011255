"""The result of explaining one image for one class, and how it is written to disk."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
from PIL import Image

from fixtrace.errors import OptionError
from fixtrace.files import replace_folder, strict_json
from fixtrace.fixations.fixation_set import FixationSet
from fixtrace.images.geometry import Geometry
from fixtrace.render.box import BOX_THRESHOLDS, box_from_heatmap
from fixtrace.render.display import Display, Style, gradient_picture, white_point
from fixtrace.render.legend import Legend
from fixtrace.render.overlay import overlay
from fixtrace.render.resample import to_uint8

#: The formats fixtrace writes its pictures in (overlay, heat map, gradient, method grids): name ->
#: (suffix, Pillow's save options). PNG at zlib's fastest level: level 6 made a 1000x872 overlay 3%
#: smaller in 3.8x the time (392 against 103 ms), its grey heat map 50 KiB smaller in 2.7x (42
#: against 16 ms); encoding was 80% of ``fixtrace explain``'s time on a folder of photos. JPEG
#: (quality 92) writes that overlay in about 5 ms, at a sixth of the size.
PICTURE_FORMATS: Mapping[str, tuple[str, Mapping[str, Any]]] = MappingProxyType(
    {"png": (".png", MappingProxyType({"compress_level": 1})), "jpg": (".jpg", MappingProxyType({"quality": 92}))}
)


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
            "tensor": self.tensor,
            "node": self.node,
            "op_type": self.op_type,
            "shape": [1, *self.shape[1:]],
            "fixations": int(len(self.counts)),
            "total_count": float(self.counts.sum()),
            "positions": [[*map(int, p), float(c)] for p, c in zip(self.positions, self.counts)],
        }


class PerLayer(Mapping[str, LayerFixations]):
    """One photo's fixations per tensor (``Explanation.per_layer``), each ``LayerFixations``
    made when first read: a batch of 32 through MobileNetV2 reaches 100 tensors, 3,200 records
    that most runs never read.

    Args:
        heads: per tensor, in walk order: (producing node's name, its op type, one photo's shape).
        fixations: per tensor, the whole batch's fixations.
        item: which photo of the batch.
    """

    def __init__(
        self, heads: Mapping[str, tuple[str, str, tuple[int, ...]]], fixations: Mapping[str, FixationSet], item: int
    ) -> None:
        self._heads = heads
        self._fixations = fixations
        self._item = item
        self._made: dict[str, LayerFixations] = {}

    def __getitem__(self, name: str) -> LayerFixations:
        made = self._made.get(name)
        if made is None:
            node, op_type, shape = self._heads[name]
            made = self._made[name] = LayerFixations(name, node, op_type, shape, self._fixations[name], self._item)
        return made

    def __iter__(self) -> Iterator[str]:
        return iter(self._heads)

    def __len__(self) -> int:
        return len(self._heads)


@dataclass
class Explanation:
    """Where the model looked when it scored one class on one photo.

    Attributes:
        image: the photo, uint8 (h, w, 3): a copy reduced by a whole factor for photos over
            ``fixtrace.images.load.MAX_DECODED_PIXELS`` (then ``photo_size`` is larger).
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
        input_map: the method's map on the model input's grid (fixations: the counts per pixel).
        photo_size: the photo's own (width, height): that of ``heatmap``, ``points`` and ``box``
            (None: ``image``'s).
        has_points: the method makes points (fixations); else ``points`` is empty and the JSON
            record has none.
        geometry: how the model input was cut from the photo (what the model saw; None: all of it).
        display: the method's display defaults (percentile clipping, signed view, gradient picture).
        style: the pictures' style (colour map, legend, points, view, clip); ``overlay`` takes changes.
        gradient: pixel-gradient methods with a signed view: the signed input gradient on the
            model input's grid, (rows, cols, channels), channels in RGB order.
        notes: what the user should know about this method on this model (e.g. a map blind to the photo).
    """

    image: np.ndarray
    target: ClassScore
    top_classes: list[ClassScore]
    points: np.ndarray
    counts: np.ndarray
    inliers: np.ndarray
    heatmap: np.ndarray
    per_layer: Mapping[str, LayerFixations]
    box_threshold: float = BOX_THRESHOLDS["fixations"]
    settings: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    input_map: np.ndarray | None = None
    photo_size: tuple[int, int] | None = None
    has_points: bool = True
    geometry: Geometry | None = None
    display: Display = field(default_factory=Display)
    style: Style = field(default_factory=Style)
    gradient: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def method(self) -> str:
        """The method (with its options) that made this explanation."""
        return str(self.settings.get("spec", self.settings.get("method", "fixations")))

    @property
    def empty(self) -> bool:
        """The map shows nothing: its heat map is all zero, or a map is not finite."""
        maps = [self.heatmap] if self.input_map is None else [self.heatmap, self.input_map]
        # A min and a max per map (NaN carries through both): no photo-size temporaries.
        ranges = [(float(m.min()), float(m.max())) if m.size else (0.0, 0.0) for m in maps]
        return not all(np.isfinite(r).all() for r in ranges) or ranges[0] == (0.0, 0.0)

    def empty_message(self) -> str:
        """Why an ``empty`` explanation is not worth keeping, in one line."""
        return (
            f"the {self.method} map of class {self.target.index} ({self.target.name}) is empty (all zero or not finite): "
            "the method found no evidence for it on this photo; try another method, class or --layer NAME"
        )

    @cached_property
    def box(self) -> tuple[int, int, int, int] | None:
        """(x0, y0, x1, y1) around the largest region over ``box_threshold`` x max; x1, y1 exclusive."""
        return box_from_heatmap(self.heatmap, self.box_threshold)

    def picture_style(self, **changes: Any) -> Style:
        """``style`` with ``changes`` (``Style`` fields), and its view settled: ``signed`` only
        where the method kept a signed gradient, else ``abs``.

        Raises:
            OptionError: an unknown field or a bad value.
        """
        style = self.style.changed(**changes) if changes else self.style
        return replace(style, view="signed" if style.view == "signed" and self.gradient is not None else "abs")

    def clip(self, style: Style | None = None) -> float:
        """The white point's percentile: the style's, else the method's."""
        style = style or self.style
        return self.display.clip if style.clip is None else style.clip

    @cached_property
    def signed_heatmap(self) -> np.ndarray:
        """The signed input gradient summed over colours, on the photo, scaled to a maximum
        magnitude of 1 (zeros without a gradient)."""
        if self.gradient is None or self.geometry is None:
            return np.zeros_like(self.heatmap)
        signed = self.geometry.to_photo(self.gradient.sum(axis=-1))
        top = float(np.abs(signed).max()) if signed.size else 0.0
        if top > 0:
            signed /= top
        return signed

    def white_point(self, style: Style | None = None) -> float:
        """The map's value shown at the top of the colour scale (1: its max): the clip
        percentile of its pixels inside what the model saw (of their magnitudes in the signed view)."""
        style = self.picture_style() if style is None else style
        key = (style.view, self.clip(style))
        cached = self._white_points.get(key)
        if cached is None:
            heat = self.signed_heatmap if style.view == "signed" else self.heatmap
            cached = self._white_points[key] = white_point(heat, key[1], self._view_window())
        return cached

    def _view_window(self) -> tuple[int, int, int, int] | None:
        """What the model saw, as whole photo pixels (x0, y0, x1, y1)."""
        if self.geometry is None:
            return None
        x0, y0, x1, y1 = self.geometry.view()
        return round(x0), round(y0), max(round(x0) + 1, round(x1)), max(round(y0) + 1, round(y1))

    @cached_property
    def _white_points(self) -> dict[tuple[str, float], float]:
        return {}

    def overlay(self, show_points: bool | None = None, show_box: bool = True, **style: Any) -> Image.Image:
        """The heat map blended on the photo, as the style says (``style``, with ``style``'s
        keywords changing it for this picture): its colour map, the white point at the clip
        percentile, the legend, the points (``show_points`` overrides), the signed view; with the box.

        Raises:
            OptionError: an unknown style keyword or a bad value.
        """
        chosen = self.picture_style(**style)
        if show_points is not None:
            chosen = replace(chosen, points=bool(show_points))
        signed = chosen.view == "signed"
        clip = self.clip(chosen)
        legend = None
        if chosen.legend:
            crops = f", {self.settings['crops']} crops" if self.settings.get("crops") else ""
            text = f"{self.target.name} {self.target.probability:.1%} ({self.method}{crops})"
            legend = Legend(text, chosen.colormap, signed, "max" if clip >= 100 else f"p{clip:g}")
        dots = chosen.points and self.has_points
        return overlay(
            self.image,
            self.signed_heatmap if signed else self.heatmap,
            self.box if show_box else None,
            self.points[self.inliers] if dots else None,
            outliers=self.points[~self.inliers] if dots else None,
            colormap=chosen.colormap,
            gain=1.0 / self.white_point(chosen),
            signed=signed,
            view=self.geometry.view() if self.geometry is not None else None,
            legend=legend,
        )

    def display_record(self) -> dict[str, Any]:
        """How the pictures show the map (``display`` in explanation.json)."""
        style = self.picture_style()
        record = {**style.to_json(), "clip": self.clip(style), "white_point": self.white_point(style)}
        return record | {"points": style.points and self.has_points}

    def to_json(self) -> dict[str, Any]:
        """Everything but the pixels, JSON-ready."""
        record: dict[str, Any] = {
            "method": self.method,
            "target": vars(self.target),
            "top_classes": [vars(c) for c in self.top_classes],
            "image_size": list(self.photo_size or (int(self.image.shape[1]), int(self.image.shape[0]))),
            "decoded_size": [int(self.image.shape[1]), int(self.image.shape[0])],
            "box": list(self.box) if self.box else None,
            "box_threshold": self.box_threshold,
            "settings": self.settings,
            "display": self.display_record(),
            "info": self.info,
        }
        if self.notes:
            record["notes"] = list(self.notes)
        if self.has_points:
            record["points"] = [
                {"x": round(float(x), 2), "y": round(float(y), 2), "count": float(c), "inlier": bool(k)}
                for (x, y), c, k in zip(self.points, self.counts, self.inliers)
            ]
        return record

    def save(self, directory: str | Path, layers: bool = False, image_format: str = "png") -> list[Path]:
        """Write overlay.png, heatmap.png, heatmap.npy, explanation.json, input_map.npy (and
        per_layer.json for fixations when asked; gradient.png for the methods whose display
        has ``gradient_picture``).

        overlay.png and heatmap.png show the map as the style says (heatmap.png: the map over
        the white point, clipped, in grey); heatmap.npy is the map scaled to a maximum of 1.

        The files are written into a temporary folder that then takes ``directory``'s place: a
        failure leaves no half-written folder, and an earlier one of the same name untouched.

        Args:
            directory: the folder to write (replaced if it exists).
            layers: also write the per-layer fixations.
            image_format: ``"png"`` or ``"jpg"`` (overlay.jpg, heatmap.jpg, gradient.jpg: a
                fraction of the size and the time, lossy).

        Returns:
            The paths written.

        Raises:
            OptionError: an unknown ``image_format``.
            OutputError: something that is not a folder is in the way, or a write failed
                (``fatal`` when the disk is full).
        """
        out = Path(directory)
        suffix, options = picture_format(image_format)

        def fill(folder: Path) -> list[str]:
            names = [f"overlay{suffix}", f"heatmap{suffix}", "heatmap.npy", "explanation.json"]
            self.overlay().save(folder / names[0], **options)
            abs_view = replace(self.picture_style(), view="abs")
            Image.fromarray(to_uint8(self.heatmap, 1.0 / self.white_point(abs_view))).save(folder / names[1], **options)
            np.save(folder / names[2], self.heatmap)
            (folder / names[3]).write_text(strict_json(self.to_json(), indent=1), encoding="utf-8")
            if self.input_map is not None:
                names.append("input_map.npy")
                np.save(folder / names[-1], self.input_map)
            if self.display.gradient_picture and self.gradient is not None:
                names.append(f"gradient{suffix}")
                Image.fromarray(gradient_picture(self.gradient)).save(folder / names[-1], **options)
            if layers and self.per_layer:
                names.append("per_layer.json")
                (folder / names[-1]).write_text(
                    strict_json([layer.to_json() for layer in self.per_layer.values()]), encoding="utf-8"
                )
            return names

        return [out / name for name in replace_folder(out, fill)]


def picture_format(name: str) -> tuple[str, Mapping[str, Any]]:
    """(suffix, Pillow's save options) of a picture format of ``PICTURE_FORMATS``.

    Raises:
        OptionError: an unknown format.
    """
    if name not in PICTURE_FORMATS:
        raise OptionError(f"image format must be one of {', '.join(PICTURE_FORMATS)}, not {name!r}")
    return PICTURE_FORMATS[name]
