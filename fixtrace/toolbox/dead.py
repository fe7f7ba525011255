"""Dead filters: channels of a layer that stay zero on (nearly) every photo of a set.

A channel is *zero* on a photo when its max over the map is at most ``zero_at`` (default 0): after
a ReLU or Clip every value of it is then exactly 0, and on a conv's own output a ReLU there would
make it so (a small positive ``zero_at`` finds nearly dead channels too). A channel is *dead* when
it is zero on more than ``threshold`` of the photos read. Photos stream through
``LayerReader`` a batch at a time; only per-channel counters are kept.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fixtrace import validate
from fixtrace.errors import FixtraceError, OptionError
from fixtrace.files import write_json_atomic, write_text_atomic
from fixtrace.images.load import ImageSource
from fixtrace.images.preset_choice import PresetArg
from fixtrace.model.load import ModelSource
from fixtrace.toolbox.activations import ZERO, feature_map
from fixtrace.toolbox.layer_choice import choose_layers
from fixtrace.toolbox.options import ALL_CONV, THRESHOLD
from fixtrace.toolbox.stream import LayerReader


@dataclass
class LayerCounts:
    """One layer's counters.

    Attributes:
        layer: the tensor name.
        layout: the layout the model keeps it in.
        zero_images: int64 (C,): photos on which each channel was zero.
        peak: float64 (C,): each channel's largest value over every photo.
        zero_at: a channel is zero on a photo when its max is at most this.
    """

    layer: str
    layout: str
    zero_images: np.ndarray
    peak: np.ndarray
    zero_at: float = ZERO

    def add(self, maps: np.ndarray) -> None:
        """Count a batch of (n, C, H, W) maps."""
        top = maps.max(axis=(2, 3))
        self.zero_images += (top <= self.zero_at).sum(axis=0)
        np.maximum(self.peak, top.max(axis=0), out=self.peak)

    def dead(self, images: int, threshold: float) -> np.ndarray:
        """The channels zero on more than ``threshold`` of ``images`` photos."""
        return np.flatnonzero(self.zero_images > threshold * images) if images else np.zeros(0, dtype=np.intp)


@dataclass
class DeadReport:
    """The dead-filter report of a photo set.

    Attributes:
        layers: each layer's counters, in the order asked for.
        images: photos read.
        threshold: a channel is dead when zero on more than this share of them.
        zero_at: a channel is zero on a photo when its max over the map is at most this.
        failed: stream position -> (the source, why it could not be read).
    """

    layers: list[LayerCounts]
    images: int
    threshold: float
    zero_at: float = ZERO
    failed: dict[int, tuple[Any, FixtraceError]] = field(default_factory=dict)

    def summary(self, counts: LayerCounts) -> str:
        """``LAYER: K of C channels dead (zero on > 99% of N images): i, j, ...``."""
        dead = counts.dead(self.images, self.threshold)
        listed = ", ".join(map(str, dead[:12])) + (", ..." if len(dead) > 12 else "")
        return (
            f"{counts.layer}: {len(dead)} of {len(counts.zero_images)} channels dead "
            f"(zero on > {100 * self.threshold:.4g}% of {self.images} images)" + (f": {listed}" if len(dead) else "")
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "failed": [str(source) for source, _ in self.failed.values()],
            "threshold": self.threshold,
            "zero_at": self.zero_at,
            "zero": f"a channel is zero on an image when its max over the map is <= {self.zero_at:g}",
            "dead": "zero on more than threshold x images",
            "layers": [
                {
                    "layer": c.layer,
                    "layout": c.layout,
                    "channels": len(c.zero_images),
                    "dead": c.dead(self.images, self.threshold).tolist(),
                    "zero_images": c.zero_images.tolist(),
                    "peak": c.peak.tolist(),
                }
                for c in self.layers
            ],
        }

    def to_csv(self) -> str:
        """One row per layer and channel: layer, channel, zero_images, images, fraction_zero, peak, dead."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["layer", "channel", "zero_images", "images", "fraction_zero", "peak", "dead"])
        for c in self.layers:
            dead = set(c.dead(self.images, self.threshold).tolist())
            for k, zeros in enumerate(c.zero_images.tolist()):
                fraction = f"{zeros / self.images:.6g}" if self.images else ""
                writer.writerow([c.layer, k, zeros, self.images, fraction, f"{c.peak[k]:.6g}", int(k in dead)])
        return out.getvalue()

    def save(self, folder: str | Path) -> list[Path]:
        """Write ``dead_filters.json`` and ``dead_filters.csv`` into ``folder``.

        Raises:
            OutputError: a write failed.
        """
        folder = Path(folder)
        paths = [folder / "dead_filters.json", folder / "dead_filters.csv"]
        write_json_atomic(paths[0], self.to_json(), indent=1)
        write_text_atomic(paths[1], self.to_csv())
        return paths


def dead_filters(
    model: ModelSource | LayerReader,
    images: Iterable[ImageSource],
    layers: str = ALL_CONV,
    *,
    threshold: float = THRESHOLD,
    zero_at: float = ZERO,
    preset: PresetArg = None,
    batch_size: int = 16,
    threads: int = 0,
    on_image: Callable[[int, Any, FixtraceError | None], None] | None = None,
) -> DeadReport:
    """Count, per layer and channel, the photos on which the channel is zero.

    Args:
        model: path, bytes, ``onnx.ModelProto``, or a ``LayerReader`` already open on the layers.
        images: the photos (paths, arrays, ...), streamed.
        layers: comma-separated feature maps, or ``all-conv`` (each conv's rectified output).
        threshold: dead when zero on more than this share of photos, in [0, 1).
        zero_at: zero on a photo when the channel's max over the map is at most this.
        preset: the preprocessing (default: the model's metadata preset, else imagenet).
        batch_size: photos per forward.
        threads: onnxruntime threads (0: its choice).
        on_image: called with (position, source, the error or None) as each photo is counted.

    Raises:
        ModelError: the model cannot be read or run.
        OptionError: a layer that is not a feature map, a bad threshold or batch size.
    """
    threshold = validate.number("threshold", threshold, 0.0, 1.0, flag="--dead-threshold", low_open=False)
    if threshold >= 1.0:
        raise OptionError(f"threshold (--dead-threshold) must be below 1, not {threshold:g}")
    zero_at = validate.number("zero_at", zero_at, -np.inf, np.inf, flag="--zero-at", low_open=False)
    if isinstance(model, LayerReader):
        reader = model
    else:
        from fixtrace.model.layer_graph import LayerGraph
        from fixtrace.model.load import load_model

        loaded = load_model(model)
        reader = LayerReader(loaded, choose_layers(LayerGraph.from_model(loaded), layers), preset=preset, threads=threads)
    for layer in reader.layers:
        feature_map(reader, layer)
    counts: dict[str, LayerCounts] = {}
    report = DeadReport([], 0, threshold, zero_at)
    for batch in reader.read(images, batch_size):
        for layer in reader.layers if len(batch) else ():
            maps = reader.nchw(layer, batch.values[layer])
            if layer not in counts:
                channels = maps.shape[1]
                counts[layer] = LayerCounts(
                    layer, reader.layouts[layer], np.zeros(channels, np.int64), np.full(channels, -np.inf), zero_at
                )
            counts[layer].add(maps)
        report.images += len(batch)
        report.failed |= batch.failed
        if on_image is not None:
            events = {k: (s, None) for k, s in zip(batch.indices, batch.sources)} | dict(batch.failed)
            for k in sorted(events):
                on_image(k, *events[k])
    report.layers = [counts[layer] for layer in reader.layers if layer in counts]
    return report
