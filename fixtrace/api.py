"""The one-call API: ``explain(model, image)``, and ``Explainer`` to reuse a model across images."""

from __future__ import annotations

import hashlib
import itertools
import os
import time
from collections import OrderedDict
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import onnx
from PIL import Image

from fixtrace import validate
from fixtrace.backends import cuda_status, get_backend
from fixtrace.errors import FixtraceError, ModelError, OptionError, TargetError
from fixtrace.explanation import ClassScore, Explanation, LayerFixations
from fixtrace.fixations import BacktrackPlan, FixationOptions, FixationSet
from fixtrace.fixations.walk import BacktrackResult
from fixtrace.runtime.tensors import Tensors
from fixtrace.images.geometry import Geometry
from fixtrace.images.load import ImageSource, load_photo
from fixtrace.images.preprocess import Preset, get_preset, input_size, preprocess
from fixtrace.labels import class_names
from fixtrace.methods import METHODS, GradualExtrapolation, MapMethod
from fixtrace.methods.base import upsample
from fixtrace.methods.cam import last_spatial_layer
from fixtrace.model.checks import check_image_channels, check_tensor_sizes
from fixtrace.model.layer_graph import LayerGraph
from fixtrace.model.load import ModelSource, load_model
from fixtrace.model.outputs import ClassOutput, choose_output, find_logits
from fixtrace.render.box import method_box_threshold
from fixtrace.render.heatmap import DEFAULT_SIGMA, heatmap, inlier_mask
from fixtrace.render.resample import unit_scale
from fixtrace.runtime.session import Session

#: The methods ``method=`` accepts.
METHOD_NAMES = ("fixations", *METHODS)
#: Where a conv fixation lands in its window.
CONV_LOCATIONS = ("argmax", "centre")
DEVICES = ("auto", "cpu", "cuda")
#: onnxruntime threads beyond this are a typo, not a machine.
MAX_THREADS = 1024
#: The rendering options of ``explain`` and ``explain_many``.
RENDER_OPTIONS = ("outlier_removal", "sigma", "box_threshold")


@dataclass
class BatchItem:
    """One photo of ``Explainer.explain_many``.

    Attributes:
        index: its position in the input list.
        image: the image as given.
        explanations: one per class asked for, best first (None on error).
        error: why it failed (None on success).
    """

    index: int
    image: Any
    explanations: list[Explanation] | None = None
    error: FixtraceError | None = None


class Explainer:
    """A model prepared once (graph, rules, onnxruntime session) and explained on many photos.

    Args:
        model: path, bytes or ``onnx.ModelProto``.
        preset: preprocessing preset name (``imagenet``, ``caffe``, ``tf``, ``raw``) or a Preset.
        conv_location: ``"argmax"`` or ``"centre"`` (see FixationOptions).
        output: graph output to explain (default: the first).
        labels: a labels file (one class name per line).
        threads: onnxruntime intra-op threads (0: onnxruntime's choice).
        device: where the backward rules run: ``"auto"`` (CUDA when a GPU is present),
            ``"cpu"`` or ``"cuda"``. On a GPU the forward asks for onnxruntime's CUDA provider
            too; ``session.fallback`` says when it is not available.
        method: ``"fixations"`` (CNN Fixations, the default) or a gradient method: ``saliency``,
            ``guided-backprop``, ``deconvnet``, ``cam``, ``gradcam``, ``guided-gradcam``.
        layer: the tensor a layer method reads (default: the last spatial map).
        ge: sharpen the map with Gradual Extrapolation (for fixations, their counts on the last
            spatial map are the coarse map, and the sharpened map replaces the Gaussian blur).
        any_output: explain the output even when it does not look like class scores (see
            ``fixtrace.model.outputs.choose_output``).

    Raises:
        ModelError: the model cannot be read, is not a 1- or 3-channel image classifier, its
            output is not a finite class-score vector, or onnxruntime cannot run it (all checked
            here, on a blank image, before any photo).
        UnsupportedOpError: a node between the input and the logits has no rule.
        OptionError: an option of the wrong type or value, an unknown keyword, a bad layer.
        FixtraceError: ``device="cuda"`` where CUDA cannot run.
    """

    def __init__(self, model: ModelSource, *, preset: str | Preset = "imagenet", conv_location: str = "argmax",
                 output: str | None = None, labels: str | Path | None = None, threads: int = 0, device: str = "auto",
                 method: str = "fixations", layer: str | None = None, ge: bool = False, any_output: bool = False,
                 **unknown: Any) -> None:
        validate.keywords(unknown, _INIT_OPTIONS, "Explainer()")
        options = explainer_options(preset=preset, conv_location=conv_location, output=output, labels=labels,
                                    threads=threads, device=device, method=method, layer=layer, ge=ge, any_output=any_output)
        method, layer, output = options["method"], options["layer"], options["output"]
        self.source = str(model) if isinstance(model, (str, os.PathLike)) else type(model).__name__
        self.graph = LayerGraph.from_model(load_model(model))
        check_image_channels(self.graph)
        self.preset = options["preset"]
        self.options = FixationOptions(conv_location=options["conv_location"])
        width, height = input_size(self.graph.image_input, self.preset)
        shapes = self.graph.shapes(self._batch_shape(1, height, width))
        check_tensor_sizes(shapes, self.graph.producer)
        self.logits = find_logits(self.graph, output)
        self.method = method
        self.plan: BacktrackPlan | None = None
        self.map_method: MapMethod | None = None
        if method == "fixations":
            if layer is not None:
                raise OptionError("--layer picks the layer of the layer methods (cam, gradcam, guided-gradcam), not of fixations")
            self.plan = BacktrackPlan(self.graph, self.options, output)
            keep, touched = self.plan.needs, self.plan.touched
        else:
            self.map_method = METHODS[method](self.graph, self.logits, layer=layer, shapes=shapes)
            keep, touched = self.map_method.needs, self.map_method.touched
        self.extrapolation: GradualExtrapolation | None = None
        self.ge_layer: str | None = None
        if options["ge"]:
            if self.map_method is not None and not self.map_method.coarse_maps:
                raise OptionError(self.map_method.no_coarse_maps())
            self.extrapolation = GradualExtrapolation(self.graph, shapes)
            keep = keep | self.extrapolation.needs
            if self.plan is not None:  # fixations: the coarse map is their count on the last spatial map
                self.ge_layer = last_spatial_layer(self.graph, shapes)
        unknown_shapes = {t for t in touched if t not in shapes}
        self.backend = get_backend(options["device"])
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if cuda_status()["gpu"] and self.backend.name == "cuda" else None
        self.session = Session(self.graph, keep | unknown_shapes | {self.logits}, providers=providers,
                               threads=options["threads"])
        #: The output explained, its kind of scores and why it was chosen (checked on a blank image:
        #: a model that onnxruntime cannot run, or whose output is not class scores, fails here).
        self.output: ClassOutput = self._probe(output, options["any_output"], height, width)
        #: The box threshold used unless ``explain`` is given one.
        self.box_threshold = method_box_threshold(method, options["ge"])
        self.labels_file = options["labels"]
        self._names: list[str] = class_names(self.num_classes, self.labels_file)

    def _probe(self, output: str | None, any_output: bool, height: int, width: int) -> ClassOutput:
        """Run the model once on a blank image: check the output and every rule against real shapes."""
        blank = np.zeros(self._batch_shape(self.graph.image_input.fixed_batch or 1, height, width), np.float32)
        values = self.session.run(blank)
        chosen = choose_output(self.graph, output, values, any_output)
        if self.plan is not None:
            self.plan.check(self.tensors(values, blank))
        return chosen

    def _batch_shape(self, batch: int, height: int, width: int) -> tuple[int, ...]:
        spec = self.graph.image_input
        channels = spec.channels or 3
        return (batch, channels, height, width) if spec.layout == "NCHW" else (batch, height, width, channels)

    def explain(self, image: ImageSource, target: int | Sequence[int] | None = None, top_k: int | None = None, *,
                outlier_removal: bool = True, sigma: float = DEFAULT_SIGMA, box_threshold: float | None = None,
                **unknown: Any) -> Explanation | list[Explanation]:
        """Explain one photo.

        Args:
            image: path, bytes, PIL image or array.
            target: class index (or indices) to explain; default: the predicted class.
            top_k: explain the k best classes instead (one map each).
            outlier_removal: drop isolated points before the heat map (the authors' rule).
            sigma: heat-map blur as a fraction of the photo's short side.
            box_threshold: fraction of the heat map's max that cuts out the box (default: the
                method's, ``fixtrace.render.box.BOX_THRESHOLDS``).

        Returns:
            One Explanation for a single class; a list, best first, when ``top_k`` or several
            targets are asked for.

        Raises:
            ImageError: the image cannot be read.
            InputShapeError: the preprocessed image does not fit the model.
            TargetError: a class index outside the model's outputs, or a bad ``top_k``.
            OptionError: a bad rendering option, an unknown keyword, or both target and top_k.
        """
        validate.keywords(unknown, RENDER_OPTIONS, "Explainer.explain()")
        render = render_options(outlier_removal, sigma, box_threshold)
        self.check_targets(target, top_k)
        t0 = time.perf_counter()
        photo = load_photo(image)
        sample, geometry = preprocess(photo.pixels, self.graph.image_input, self.preset, photo.size)
        load_ms = (time.perf_counter() - t0) * 1e3
        return self.explain_prepared(photo.pixels, sample[None], geometry, target, top_k, load_ms=load_ms, **render)

    def explain_many(self, images: Iterable[ImageSource], target: int | Sequence[int] | None = None,
                     top_k: int | None = None, *, batch_size: int = 8, outlier_removal: bool = True,
                     sigma: float = DEFAULT_SIGMA, box_threshold: float | None = None, **unknown: Any) -> Iterator[BatchItem]:
        """Explain many photos, ``batch_size`` at a time through one forward and one walk.

        The photos are read as they are needed (a generator of paths streams), and a photo that
        fails (unreadable, or its batch fails and it fails again alone) yields its error; the
        others go on.

        Args:
            images: paths, bytes, PIL images or arrays (any iterable, not one image).
            target, top_k, outlier_removal, sigma, box_threshold: as in ``explain``.
            batch_size: photos per forward and walk (capped by a fixed batch dim of the model).

        Yields:
            One BatchItem per photo, in order.

        Raises:
            TargetError: a class index outside the model's outputs (before any photo is run).
            OptionError: a bad option, batch size, or a single image instead of several.
        """
        validate.keywords(unknown, (*RENDER_OPTIONS, "batch_size"), "Explainer.explain_many()")
        render = render_options(outlier_removal, sigma, box_threshold)
        batch_size = validate.integer("batch_size", batch_size, 1, flag="--batch-size")
        if isinstance(images, (str, bytes, bytearray, os.PathLike, np.ndarray, Image.Image)):
            raise OptionError(f"explain_many takes several images (a list or any iterable), not a single "
                              f"{type(images).__name__}; use explain() for one image")
        self.check_targets(target, top_k)
        size = min(batch_size, self.graph.image_input.fixed_batch or batch_size)
        stream = iter(images)
        first = 0
        while chunk := list(itertools.islice(stream, size)):
            loaded: list[tuple[int, np.ndarray, np.ndarray, Geometry]] = []
            failed: dict[int, FixtraceError] = {}
            t0 = time.perf_counter()
            for k, image in enumerate(chunk, start=first):
                try:
                    photo = load_photo(image)
                    sample, geometry = preprocess(photo.pixels, self.graph.image_input, self.preset, photo.size)
                    loaded.append((k, photo.pixels, sample, geometry))
                except FixtraceError as exc:
                    failed[k] = exc
            load_ms = (time.perf_counter() - t0) * 1e3 / max(len(loaded), 1)
            done = self._run_or_retry_alone(loaded, target, top_k, render, load_ms)
            for k, image in enumerate(chunk, start=first):
                result = done.get(k, failed.get(k))
                if isinstance(result, FixtraceError):
                    yield BatchItem(k, image, error=result)
                else:
                    yield BatchItem(k, image, explanations=result)
            first += len(chunk)

    def _run_or_retry_alone(self, loaded, target, top_k, render, load_ms) -> dict[int, list[Explanation] | FixtraceError]:
        """Explain a loaded batch; if it fails, each photo alone, so only the culprit fails."""
        if not loaded:
            return {}
        try:
            results = self.explain_batch([p for _, p, _, _ in loaded], np.stack([s for _, _, s, _ in loaded]),
                                         [g for _, _, _, g in loaded], target, top_k, load_ms=load_ms, **render)
            return {k: r for (k, *_), r in zip(loaded, results)}
        except FixtraceError as exc:
            if len(loaded) == 1:
                return {loaded[0][0]: exc}
        done: dict[int, list[Explanation] | FixtraceError] = {}
        for item in loaded:
            done |= self._run_or_retry_alone([item], target, top_k, render, load_ms)
        return done

    def explain_prepared(self, photo: np.ndarray, batch: np.ndarray, geometry: Geometry,
                         target: int | Sequence[int] | None = None, top_k: int | None = None, *,
                         outlier_removal: bool = True, sigma: float = DEFAULT_SIGMA, box_threshold: float | None = None,
                         load_ms: float = 0.0) -> Explanation | list[Explanation]:
        """Explain an already preprocessed photo (the part of ``explain`` after loading).

        Args:
            photo: the original photo, uint8 (H, W, 3).
            batch: the model input, a batch of one.
            geometry: how ``batch`` was cut from ``photo``.
            target, top_k, outlier_removal, sigma, box_threshold: as in ``explain``.
            load_ms: time spent loading, reported in the timings.

        Returns:
            As ``explain``.
        """
        results = self.explain_batch([photo], batch, [geometry], target, top_k, outlier_removal=outlier_removal,
                                     sigma=sigma, box_threshold=box_threshold, load_ms=load_ms)[0]
        return results[0] if len(results) == 1 and top_k is None and not isinstance(target, (list, tuple)) else results

    def explain_batch(self, photos: list[np.ndarray], batch: np.ndarray, geometries: list[Geometry],
                      target: int | Sequence[int] | None = None, top_k: int | None = None, *,
                      outlier_removal: bool = True, sigma: float = DEFAULT_SIGMA, box_threshold: float | None = None,
                      load_ms: float = 0.0) -> list[list[Explanation]]:
        """Explain preprocessed photos with one forward and one backward walk per asked class rank.

        ``outlier_removal`` and ``sigma`` apply to fixations (points); gradient methods make dense maps.

        Args:
            photos: the original photos.
            batch: the model input, one row per photo.
            geometries: how each row was cut from its photo.
            target, top_k, outlier_removal, sigma, box_threshold: as in ``explain``.
            load_ms: time spent loading one photo, reported in the timings.

        Returns:
            Per photo, its explanations (one per class asked for, best first).
        """
        box_threshold = self.box_threshold if box_threshold is None else box_threshold
        t1 = time.perf_counter()
        values = self.session.run(batch)
        t2 = time.perf_counter()
        n = len(photos)
        all_logits = values[self.logits].reshape(n, -1).astype(np.float64)
        explicit = self.check_targets(target, top_k, all_logits.shape[1])
        broken = ~np.isfinite(all_logits).all(axis=1)
        if broken.any():
            which = "this photo" if n == 1 else f"photo {int(np.argmax(broken)) + 1} of the batch"
            raise ModelError(f"the model's scores for {which} are not finite (NaN or infinity): the model overflows "
                             "float32 on this input")
        scores, targets = [], []
        for logits, probability in zip(all_logits, self.output.probabilities(all_logits)):
            ranking = np.argsort(-probability, kind="stable")
            score = self._scorer(logits, probability)
            scores.append((score, [score(int(i)) for i in ranking[:5]]))
            targets.append(explicit or [int(i) for i in ranking[: top_k or 1]])
        tensors = self.tensors(values, batch)
        settings = {"method": self.method, "preset": self.preset.name, "box_threshold": box_threshold}
        settings["gradual_extrapolation"] = self.extrapolation is not None
        if self.plan is not None:
            settings |= {"conv_location": self.options.conv_location, "outlier_removal": outlier_removal, "sigma": sigma}
        else:
            settings["layer"] = self.map_method.layer
        context = dict(photos=photos, batch=batch, geometries=geometries, tensors=tensors, targets=targets, scores=scores,
                       box_threshold=box_threshold, settings=settings, forward_ms=(t2 - t1) * 1e3, load_ms=load_ms)
        if self.map_method is not None:
            return self._map_results(**context)
        return self._fixation_results(outlier_removal=outlier_removal, sigma=sigma, **context)

    def _info(self, n: int, timings: dict[str, float]) -> dict[str, Any]:
        info = {"model": self.source, "output": self.output.to_json(), "providers": self.session.providers_in_use,
                **self.backend.describe(), "batch_size": n, "timings_ms": timings, "versions": _versions()}
        if self.session.fallback:
            info["forward_fallback"] = self.session.fallback
        return info

    def _fixation_results(self, photos, batch, geometries, tensors, targets, scores, box_threshold, settings, forward_ms,
                          load_ms, outlier_removal, sigma) -> list[list[Explanation]]:
        """One backward walk per asked class rank, for the whole batch; then points and heat maps per photo."""
        n = len(photos)
        n_classes = int(np.prod(tensors.shape(self.logits)[1:]))
        per_item = int(np.prod(batch.shape[1:]))
        results: list[list[Explanation]] = [[] for _ in range(n)]
        for rank in range(len(targets[0])):
            t3 = time.perf_counter()
            walk = self.plan.run(self.backend.start([b * n_classes + targets[b][rank] for b in range(n)]), tensors)
            arrived = walk.input.host()
            if self.extrapolation is not None:
                sharp = upsample(self.extrapolation.apply(self._fixation_counts(walk, tensors, n), tensors), _grid(self.graph, batch))
            t4 = time.perf_counter()
            for b in range(n):
                t5 = time.perf_counter()
                xy, counts = self._input_points(arrived.item(b, per_item), (1, *batch.shape[1:]), geometries[b])
                original = geometries[b].original
                keep = inlier_mask(xy, counts, original) if outlier_removal else np.ones(len(xy), dtype=bool)
                if self.extrapolation is None:
                    heat = heatmap(xy[keep], counts[keep], original, sigma)
                else:
                    heat = unit_scale(geometries[b].to_photo(sharp[b]))
                timings = {"load_ms": load_ms, "forward_ms": forward_ms, "backtrack_ms": (t4 - t3) * 1e3,
                           "render_ms": (time.perf_counter() - t5) * 1e3}
                score, top_classes = scores[b]
                results[b].append(Explanation(
                    image=photos[b], target=score(targets[b][rank]), top_classes=top_classes,
                    points=xy, counts=counts, inliers=keep, heatmap=heat, per_layer=self._layers(walk, tensors, b),
                    box_threshold=box_threshold, settings=settings, info=self._info(n, timings),
                    photo_size=geometries[b].original,
                ))
        return results

    def _map_results(self, photos, batch, geometries, tensors, targets, scores, box_threshold, settings, forward_ms,
                     load_ms) -> list[list[Explanation]]:
        """One gradient walk per asked class rank, for the whole batch; each map resampled onto its photo."""
        n = len(photos)
        grid = _grid(self.graph, batch)
        results: list[list[Explanation]] = [[] for _ in range(n)]
        for rank in range(len(targets[0])):
            t3 = time.perf_counter()
            chosen = [targets[b][rank] for b in range(n)]
            if self.extrapolation is not None:
                sharp = self.extrapolation.apply(self.map_method.coarse(tensors, chosen), tensors)
                maps = upsample(sharp, grid)
            else:
                maps = self.map_method.maps(tensors, chosen)
            t4 = time.perf_counter()
            for b in range(n):
                t5 = time.perf_counter()
                if not np.isfinite(maps[b]).all():
                    raise ModelError(f"the {self.method} map is not finite (NaN or infinity): the model's activations "
                                     "overflow float32 on this input")
                heat = unit_scale(geometries[b].to_photo(maps[b]))
                timings = {"load_ms": load_ms, "forward_ms": forward_ms, "backward_ms": (t4 - t3) * 1e3,
                           "render_ms": (time.perf_counter() - t5) * 1e3}
                score, top_classes = scores[b]
                results[b].append(Explanation(
                    image=photos[b], target=score(chosen[b]), top_classes=top_classes, points=np.zeros((0, 2)),
                    counts=np.zeros(0), inliers=np.zeros(0, dtype=bool), heatmap=heat, per_layer={},
                    box_threshold=box_threshold, settings=settings, info=self._info(n, timings), input_map=maps[b],
                    photo_size=geometries[b].original,
                ))
        return results

    def _fixation_counts(self, walk: BacktrackResult, tensors: Tensors, n: int) -> np.ndarray:
        """(N, h, w): fixation counts on the last spatial map, channels summed (GE's coarse map)."""
        shape = tensors.shape(self.ge_layer)
        counts = np.zeros(int(np.prod(shape)), dtype=np.float32)
        reached = walk.per_tensor.get(self.ge_layer)
        if reached is not None:
            own = reached.host()
            counts[own.index] = own.count
        return counts.reshape(shape).sum(axis=1)[:n]

    def tensors(self, values: dict[str, np.ndarray], batch: np.ndarray) -> Tensors:
        """The values of one run, with the input, shapes, constants and recompute recipes."""
        return Tensors(values | {self.graph.image_input.name: batch}, self.graph.shapes(batch.shape),
                       self.graph.constants, self.plan.recipes if self.plan else {}, self.backend)

    @property
    def num_classes(self) -> int:
        """Scores per image in the explained output."""
        return self.output.classes

    def _scorer(self, logits: np.ndarray, probability: np.ndarray):
        """A function class index -> ClassScore for this image."""
        names = self._names
        return lambda i: ClassScore(i, names[i], float(probability[i]), float(logits[i]))

    def check_targets(self, target: int | Sequence[int] | None, top_k: int | None, n: int | None = None) -> list[int]:
        """Validate the requested classes before any image is run.

        Args:
            target: class index or indices, or None.
            top_k: number of best classes, or None.
            n: number of classes (default: the explained output's).

        Returns:
            The explicit targets (empty when the best classes are wanted).

        Raises:
            TargetError: an index that is not a whole number in 0..n-1, asked twice, or none at
                all; a top_k that is not a whole number in 1..n.
            OptionError: both target and top_k.
        """
        n = self.num_classes if n is None else n
        if target is not None and top_k is not None:
            raise OptionError("give target (--class) or top_k (--top-k), not both")
        if top_k is not None:
            if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or not 1 <= top_k <= n:
                raise TargetError(f"top_k (--top-k) must be a whole number between 1 and {n} (the model's classes), not {top_k!r}")
            return []
        if target is None:
            return []
        wanted = list(target) if isinstance(target, (list, tuple, np.ndarray)) else [target]
        if not wanted:
            raise TargetError("no class asked for: target is an empty list")
        for t in wanted:
            if isinstance(t, (bool, np.bool_)) or not isinstance(t, (int, np.integer)):
                raise TargetError(f"class index {t!r} is not a whole number")
            if not 0 <= t < n:
                raise TargetError(f"class index {t} is out of range: the model has {n} classes (0..{n - 1})")
        twice = next((t for k, t in enumerate(wanted) if t in wanted[:k]), None)
        if twice is not None:
            raise TargetError(f"class {twice} is asked for twice")
        return [int(t) for t in wanted]

    def _input_points(self, fixations: FixationSet, shape: tuple[int, ...], geometry) -> tuple[np.ndarray, np.ndarray]:
        """Input fixations of one photo (host) -> one point per input pixel (channels merged) on the photo."""
        positions = fixations.positions(shape)
        rows, cols = (positions[:, 2], positions[:, 3]) if self.graph.image_input.layout == "NCHW" else (positions[:, 1], positions[:, 2])
        pixel = rows * shape[-1 if self.graph.image_input.layout == "NCHW" else -2] + cols
        unique, inverse = np.unique(pixel, return_inverse=True)
        counts = np.bincount(inverse, weights=fixations.count).astype(np.float64)
        width = geometry.input[0]
        return geometry.to_original(unique // width, unique % width), counts

    def _layers(self, walk: BacktrackResult, tensors: Tensors, item: int) -> dict[str, LayerFixations]:
        layers = {}
        for name, fixations in walk.per_tensor.items():
            node = self.graph.producer.get(name)
            shape = tensors.shape(name)
            layers[name] = LayerFixations(
                tensor=name, node=node.name if node else "", op_type=node.op_type if node else "Input",
                shape=(1, *shape[1:]), fixations=fixations, item=item,
            )
        return layers


def _grid(graph: LayerGraph, batch: np.ndarray) -> tuple[int, int]:
    """(rows, cols) of the model input."""
    return (batch.shape[2], batch.shape[3]) if graph.image_input.layout == "NCHW" else (batch.shape[1], batch.shape[2])


_CACHE: "OrderedDict[tuple, Explainer]" = OrderedDict()
_CACHE_SIZE = 4
#: What ``Explainer()`` takes besides the model.
_INIT_OPTIONS = ("preset", "conv_location", "output", "labels", "threads", "device", "method", "layer", "ge", "any_output")


def explain(model: ModelSource, image: ImageSource, target: int | Sequence[int] | None = None, top_k: int | None = None,
            *, preset: str | Preset = "imagenet", conv_location: str = "argmax", labels: str | Path | None = None,
            device: str = "auto", method: str = "fixations", layer: str | None = None, ge: bool = False,
            **options: Any) -> Explanation | list[Explanation]:
    """Explain a photo in one call (CNN Fixations by default); the prepared model is cached.

    Args:
        model: path, bytes or ``onnx.ModelProto``.
        image: path, bytes, PIL image or array.
        target: class index or indices (default: the predicted class).
        top_k: explain the k best classes (one map each).
        preset: preprocessing preset.
        conv_location: ``"argmax"`` or ``"centre"``.
        labels: labels file.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"`` (see Explainer).
        method, layer, ge: the explanation method (see Explainer).
        **options: ``Explainer.explain``'s (outlier_removal, sigma, box_threshold) and
            ``Explainer``'s others (output, threads, any_output).

    Returns:
        An Explanation, or a list of them for several classes.

    Raises:
        ModelError, ImageError, TargetError, OptionError: as ``Explainer`` and ``Explainer.explain``.
    """
    validate.keywords(options, (*RENDER_OPTIONS, "output", "threads", "any_output"), "fixtrace.explain()")
    prepared = explainer_options(preset=preset, conv_location=conv_location, labels=labels, device=device, method=method,
                                 layer=layer, ge=ge, output=options.pop("output", None), threads=options.pop("threads", 0),
                                 any_output=options.pop("any_output", False))
    key = (_model_key(model), *((k, v.name if isinstance(v, Preset) else str(v)) for k, v in sorted(prepared.items())))
    explainer = _CACHE.get(key)
    if explainer is None:
        explainer = Explainer(model, **prepared)
        _CACHE[key] = explainer
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    _CACHE.move_to_end(key)
    return explainer.explain(image, target, top_k, **options)


def explainer_options(*, preset: Any, conv_location: Any, output: Any, labels: Any, threads: Any, device: Any, method: Any,
                      layer: Any, ge: Any, any_output: Any) -> dict[str, Any]:
    """``Explainer``'s options checked and normalised (method and preset names are case-blind).

    Raises:
        OptionError: naming the option and what it accepts.
    """
    if labels is not None and not isinstance(labels, (str, os.PathLike)):
        raise OptionError(f"labels (--labels) must be the path of a labels file, not {type(labels).__name__}")
    return {
        "preset": get_preset(preset),
        "conv_location": validate.choice("conv_location", conv_location, CONV_LOCATIONS, "--conv-location"),
        "output": validate.text("output", output, "--output"),
        "labels": labels,
        "threads": validate.integer("threads", threads, 0, MAX_THREADS, "--threads"),
        "device": validate.choice("device", device, DEVICES, "--device"),
        "method": validate.choice("method", method, METHOD_NAMES, "--method"),
        "layer": validate.text("layer", layer, "--layer"),
        "ge": validate.boolean("ge", ge),
        "any_output": validate.boolean("any_output", any_output),
    }


def render_options(outlier_removal: Any, sigma: Any, box_threshold: Any) -> dict[str, Any]:
    """The rendering options checked: a boolean outlier removal, sigma in (0, 1], and a box
    threshold in (0, 1] or None (the method's default).

    Raises:
        OptionError: naming the option and its range.
    """
    return {
        "outlier_removal": validate.boolean("outlier_removal", outlier_removal),
        "sigma": validate.number("sigma", sigma, 0.0, 1.0, "--sigma", what="a blur, a fraction of the short side,"),
        "box_threshold": None if box_threshold is None else validate.number(
            "box_threshold", box_threshold, 0.0, 1.0, "--box-threshold", what="the box threshold, a fraction of the max,"),
    }


def check_render_options(sigma: float, box_threshold: float | None) -> None:
    """Raise OptionError unless sigma is in (0, 1] and box_threshold in (0, 1] or None."""
    render_options(True, sigma, box_threshold)


def _model_key(model: ModelSource) -> tuple:
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        try:
            stat = path.stat() if path.is_file() else None
        except OSError:
            stat = None
        return ("path", str(path.resolve()), stat.st_mtime_ns if stat else 0, stat.st_size if stat else 0)
    if isinstance(model, (bytes, bytearray, onnx.ModelProto)):
        data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else bytes(model)
        return ("bytes", hashlib.sha1(data).hexdigest())
    raise ModelError(f"a model must be a path, bytes or onnx.ModelProto, not {type(model).__name__}")


def _versions() -> dict[str, str]:
    import numba
    import onnxruntime

    from fixtrace import __version__

    return {"fixtrace": __version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
            "numba": numba.__version__, "numpy": np.__version__}
