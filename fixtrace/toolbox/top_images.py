"""Maximally activating images (CS231n): the k photos of a stream that excite a channel of a layer
the most, each cut to the receptive field of the channel's best cell; or the k photos with the
highest score for a class.

The stream is read once, a batch at a time, keeping only a heap of k (score, stream index, photo,
cell) per channel: memory does not grow with the number of photos. The k winners are decoded
again at the end to cut their patches from the photo at its own resolution."""

from __future__ import annotations

import csv
import heapq
import io
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from fixtrace import validate
from fixtrace.errors import OptionError, TargetError
from fixtrace.files import make_folder, write_atomic, write_json_atomic, write_text_atomic
from fixtrace.images.geometry import Geometry
from fixtrace.images.load import ImageSource, load_photo
from fixtrace.images.preset_choice import PresetArg
from fixtrace.model.load import ModelSource
from fixtrace.model.outputs import ClassOutput, choose_output
from fixtrace.model.receptive_field import ReceptiveField, receptive_field
from fixtrace.toolbox.options import DEFAULT_K, SCORES
from fixtrace.toolbox.stream import LayerBatch, LayerReader


@dataclass(frozen=True)
class Winner:
    """One of the k photos of a channel or class.

    Attributes:
        unit: the channel (or class) it won for.
        rank: 1 for the best.
        index: its position in the stream (ties go to the earlier photo).
        source: the photo as given.
        score: the channel's score (max or mean of its map), or the class's raw score.
        cell: (row, col) of the channel's largest cell (the first in raster order); None for a class.
        box: (x0, y0, x1, y1) on the photo, in its own pixels (x1, y1 exclusive): the receptive
            field of ``cell``, or the whole photo for a class.
        patch: uint8 (h, w, 3), the photo inside ``box``.
        probability: the class's probability (classes only).
        geometry: how the model input was cut from the photo (``Geometry.to_original`` maps input
            pixels, such as ``field.centre(*cell)``, onto the photo).
    """

    unit: int
    rank: int
    index: int
    source: Any
    score: float
    cell: tuple[int, int] | None
    box: tuple[int, int, int, int]
    patch: np.ndarray = field(repr=False)
    probability: float | None = None
    geometry: Geometry | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        """The photo's file name, or ``#index`` for photos given as data."""
        return Path(self.source).name if isinstance(self.source, (str, os.PathLike)) else f"#{self.index}"

    def to_json(self) -> dict:
        return {
            "unit": self.unit,
            "rank": self.rank,
            "image": str(self.source) if isinstance(self.source, (str, os.PathLike)) else self.name,
            "index": self.index,
            "score": self.score,
            "cell": None if self.cell is None else list(self.cell),
            "box": list(self.box),
            "probability": self.probability,
        }


@dataclass
class TopImages:
    """The winners of every channel (or class), best first.

    Attributes:
        layer: the layer read (None for classes).
        kind: ``"channel"`` or ``"class"``.
        score: ``"max"`` or ``"mean"`` of a channel's map; ``"logit"`` for classes (the raw class score).
        k: winners asked for per unit.
        winners: unit -> its winners, best first (fewer than k when the stream was shorter).
        field: the layer's receptive field (None for classes).
        seen: photos ranked (the unreadable ones are in ``failed``).
        failed: (photo, why) of each photo that could not be read.
        names: unit -> its label in the picture ("channel 12", "class 281 tabby").
    """

    layer: str | None
    kind: str
    score: str
    k: int
    winners: dict[int, list[Winner]]
    field: ReceptiveField | None
    seen: int
    failed: list[tuple[Any, str]]
    names: dict[int, str]

    def to_json(self) -> dict:
        about: dict[str, Any] = {"layer": self.layer, "kind": self.kind, "score": self.score, "k": self.k, "images": self.seen}
        if self.field is not None:
            about["receptive_field"] = {
                "size": list(self.field.size),
                "stride": list(self.field.stride),
                "offset": list(self.field.offset),
                "whole_image": self.field.whole,
            }
        about["failed"] = [{"image": str(source), "error": why} for source, why in self.failed]
        about["winners"] = [w.to_json() for found in self.winners.values() for w in found]
        return about

    def picture(self, tile: int = 112) -> Image.Image:
        """A units x k grid of the patches, best first (see ``toolbox.top_images_picture``)."""
        from fixtrace.toolbox.top_images_picture import draw

        return draw(self, tile)

    def save(self, folder: str | os.PathLike) -> list[Path]:
        """Write ``top_images.jpg``, ``winners.json`` and ``winners.csv`` into ``folder`` (created).

        Returns:
            The files written.

        Raises:
            OutputError: a write failed.
        """
        folder = make_folder(folder)
        paths = [folder / "top_images.jpg", folder / "winners.json", folder / "winners.csv"]
        picture = self.picture()
        write_atomic(paths[0], lambda p: picture.save(p, format="JPEG", quality=90))
        write_json_atomic(paths[1], self.to_json(), indent=1)
        write_text_atomic(paths[2], self.to_csv())
        return paths

    def to_csv(self) -> str:
        """One line per winner: unit, rank, image, index, score, probability, cell row and col, box."""
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(["unit", "rank", "image", "index", "score", "probability", "row", "col", "x0", "y0", "x1", "y1"])
        for found in self.winners.values():
            for w in found:
                entry = w.to_json()
                cell = w.cell if w.cell is not None else ("", "")
                probability = "" if w.probability is None else f"{w.probability:.6g}"
                writer.writerow([w.unit, w.rank, entry["image"], w.index, f"{w.score:.9g}", probability, *cell, *w.box])
        return text.getvalue()


class _Best:
    """The k largest (score, earliest index) offered, in a min-heap: O(k) memory."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.heap: list[tuple[float, int, tuple]] = []

    def offer(self, score: float, index: int, payload: tuple) -> None:
        if math.isnan(score):
            return  # unrankable: a NaN would break the heap's order
        item = (score, -index, payload)  # (score, -index) is unique: payloads are never compared
        if len(self.heap) < self.k:
            heapq.heappush(self.heap, item)
        elif item[:2] > self.heap[0][:2]:
            heapq.heapreplace(self.heap, item)

    def best(self) -> list[tuple[float, int, tuple]]:
        """(score, index, payload), best first; equal scores in stream order."""
        return [(score, -negative, payload) for score, negative, payload in sorted(self.heap, key=lambda i: (-i[0], -i[1]))]


class TopImageFinder:
    """A model prepared to rank photos by channels of one layer, or by classes.

    Args:
        model: path, bytes or ``onnx.ModelProto``.
        layer: the layer whose channels rank the photos (``fixtrace layers MODEL``); None with ``classes``.
        channels: channel indices of ``layer``.
        k: photos kept per channel.
        classes: rank by these classes' raw scores instead (whole photos).
        score: ``"max"`` (the channel's largest cell) or ``"mean"`` (its average) of a photo's map.
        preset, output, threads: as ``LayerReader``.

    Raises:
        OptionError: a missing or contradictory choice, a bad ``k`` or ``score``, a layer that is
            not a feature map, a channel out of range.
        TargetError: a class out of range.
        ModelError, UnsupportedOpError: the model cannot be read, or the layer's receptive field
            cannot be composed.
    """

    def __init__(
        self,
        model: ModelSource,
        layer: str | None = None,
        channels: Sequence[int] = (),
        k: int = DEFAULT_K,
        *,
        classes: Sequence[int] = (),
        score: str = "max",
        preset: PresetArg = None,
        output: str | None = None,
        threads: int = 0,
    ) -> None:
        self.k = validate.integer("k", k, 1, flag="-k")
        if classes and (layer is not None or channels):
            raise OptionError("classes (--class) rank whole photos by a class score: give no layer or channel with them")
        if not classes and layer is None:
            raise OptionError("a layer (--layer) with its channels (--channel), or classes (--class), is needed")
        if not classes and not channels:
            raise OptionError(f"layer {layer!r} needs at least one channel (--channel C, repeatable)")
        self.score = validate.choice("score", score, SCORES, flag="--score")
        if classes and self.score != "max":
            raise OptionError("score (--score) is for channels; classes rank photos by their raw score (logit)")
        self.score = "logit" if classes else self.score
        self.reader = LayerReader(model, [layer] if layer is not None else [], preset=preset, output=output, threads=threads)
        self.layer = layer
        self.field: ReceptiveField | None = None
        if layer is not None:
            shape = self.reader.shapes.get(layer)
            if shape is None:
                raise OptionError(f"the shape of layer {layer!r} is unknown at this input size")
            count = self.reader.nchw(layer, np.broadcast_to(np.float32(0), shape)).shape[1]
            self.units = _units("channel", "--channel", channels, count, f"layer {layer!r} has {count} channels", OptionError)
            self.field = receptive_field(self.reader.graph, layer, self.reader.shapes)
        else:
            count = int(np.prod(self.reader.shapes.get(self.reader.logits, (1, 0))[1:], dtype=np.int64))
            self.units = _units("class", "--class", classes, count, f"the model has {count} classes", TargetError)
        self.kind = "class" if classes else "channel"

    def run(
        self,
        images: Iterable[ImageSource],
        batch_size: int = 32,
        on_step: Callable[[str], None] | None = None,
        on_failure: Callable[[Any, str], None] | None = None,
    ) -> TopImages:
        """Read every photo once and keep the k best of each unit.

        Args:
            images: photos (paths, arrays, ...); a path is opened twice if it wins.
            batch_size: photos per forward.
            on_step: called with each photo's name as it is done (read or failed).
            on_failure: called with (photo, why) for each photo that cannot be read.

        Returns:
            The winners, their patches cut from the photos.

        Raises:
            ImageError: a winner cannot be read again.
        """
        best = {unit: _Best(self.k) for unit in self.units}
        failed: list[tuple[Any, str]] = []
        seen = 0
        classes: ClassOutput | None = None
        for batch in self.reader.read(images, batch_size):
            for source, exc in batch.failed.values():
                failed.append((source, str(exc)))
                if on_failure is not None:
                    on_failure(source, str(exc))
            if len(batch):
                if self.kind == "class" and classes is None:
                    classes = choose_output(self.reader.graph, None, {self.reader.logits: batch.scores})
                self._offer(batch, best, classes)
            seen += len(batch)
            if on_step is not None:
                for index in sorted([*batch.indices, *batch.failed]):
                    on_step(_label(batch, index))
        winners = {
            unit: [self._winner(unit, rank, *item) for rank, item in enumerate(best[unit].best(), 1)] for unit in self.units
        }
        return TopImages(self.layer, self.kind, self.score, self.k, winners, self.field, seen, failed, self._names())

    def _offer(self, batch: LayerBatch, best: dict[int, _Best], classes: ClassOutput | None) -> None:
        """Offer each photo of ``batch`` to the heap of each unit."""
        if classes is not None:
            scores = batch.scores[:, self.units]
            probabilities = classes.probabilities(batch.scores)[:, self.units]
            for row, index in enumerate(batch.indices):
                for u, unit in enumerate(self.units):
                    payload = (batch.sources[row], None, batch.geometries[row], float(probabilities[row, u]))
                    best[unit].offer(float(scores[row, u]), index, payload)
            return
        assert self.layer is not None
        maps = self.reader.nchw(self.layer, batch.values[self.layer])[:, self.units]
        flat = maps.reshape(maps.shape[0], maps.shape[1], -1)
        cells = flat.argmax(axis=2)  # the first largest cell in raster order
        scores = flat.max(axis=2) if self.score == "max" else flat.mean(axis=2, dtype=np.float64)
        width = maps.shape[3]
        for row, index in enumerate(batch.indices):
            for u, unit in enumerate(self.units):
                cell = divmod(int(cells[row, u]), width)
                best[unit].offer(float(scores[row, u]), index, (batch.sources[row], cell, batch.geometries[row], None))

    def _winner(self, unit: int, rank: int, score: float, index: int, payload: tuple) -> Winner:
        """A winner with its patch, its photo decoded again."""
        source, cell, geometry, probability = payload
        photo = load_photo(source)
        width, height = photo.size
        if cell is None or self.field is None:
            box = (0, 0, width, height)
        else:
            box = geometry.box_to_original(*self.field.window(*cell))
        return Winner(
            unit, rank, index, source, score, cell, box, cut_patch(photo.pixels, box, photo.size), probability, geometry
        )

    def _names(self) -> dict[int, str]:
        if self.kind == "channel":
            return {unit: f"channel {unit}" for unit in self.units}
        from fixtrace.labels import class_names

        names = class_names(int(np.prod(self.reader.shapes[self.reader.logits][1:])), model=self.reader.graph.model)
        return {unit: f"class {unit} {names[unit]}" for unit in self.units}


def top_images(
    model: ModelSource,
    images: Iterable[ImageSource],
    layer: str | None = None,
    channels: Sequence[int] = (),
    k: int = DEFAULT_K,
    *,
    classes: Sequence[int] = (),
    score: str = "max",
    preset: PresetArg = None,
    output: str | None = None,
    batch_size: int = 32,
    threads: int = 0,
    on_step: Callable[[str], None] | None = None,
) -> TopImages:
    """The k photos of ``images`` that excite each channel of ``layer`` the most (or score highest
    for each class), each with the patch its best cell sees.

    A channel ranks a photo by the largest value of its map (``score="mean"``: the map's mean);
    the patch is the receptive field of the largest cell mapped back through the preprocessing onto
    the photo. A class ranks a photo by its raw score (the logit, before any softmax; its probability
    is reported beside it), and the patch is the whole photo. Equal scores keep stream order.

    Args:
        model, layer, channels, k, classes, score, preset, output, threads: as ``TopImageFinder``.
        images: photos (paths, arrays, ...), read once in batches of ``batch_size``; unreadable
            ones are skipped and listed in ``failed``.
        on_step: called with each photo's name as it is done.

    Returns:
        The winners (``TopImages.picture`` draws them; ``save`` writes picture, JSON and CSV).

    Raises:
        OptionError, TargetError, ModelError, UnsupportedOpError: as ``TopImageFinder``.
    """
    finder = TopImageFinder(
        model, layer, channels, k, classes=classes, score=score, preset=preset, output=output, threads=threads
    )
    return finder.run(images, batch_size, on_step)


def _units(what: str, flag: str, given: Sequence[int], count: int, having: str, error: type[Exception]) -> list[int]:
    """``given`` checked to lie in 0..count-1, duplicates dropped, order kept."""
    units: list[int] = []
    for unit in given:
        if isinstance(unit, bool) or not isinstance(unit, (int, np.integer)):
            raise OptionError(f"a {what} ({flag}) must be a whole number, not {unit!r}")
        if not 0 <= unit < count:
            raise error(f"{what} {unit} ({flag}) is out of range: {having} (0..{count - 1})")
        if int(unit) not in units:
            units.append(int(unit))
    return units


def cut_patch(pixels: np.ndarray, box: tuple[int, int, int, int], size: tuple[int, int]) -> np.ndarray:
    """The part of ``pixels`` inside ``box`` (photo pixels; ``pixels`` may be a reduced copy of a
    photo of ``size``)."""
    sx, sy = pixels.shape[1] / size[0], pixels.shape[0] / size[1]
    x0, y0, x1, y1 = box
    left, top = int(math.floor(x0 * sx)), int(math.floor(y0 * sy))
    right, bottom = max(int(math.ceil(x1 * sx)), left + 1), max(int(math.ceil(y1 * sy)), top + 1)
    return np.ascontiguousarray(pixels[top:bottom, left:right])


def _label(batch: LayerBatch, index: int) -> str:
    source = batch.failed[index][0] if index in batch.failed else batch.sources[batch.indices.index(index)]
    return Path(source).name if isinstance(source, (str, os.PathLike)) else f"#{index}"
