"""The one-call API: ``explain(model, image)``, and ``Explainer`` to reuse a model across images."""

from __future__ import annotations

import hashlib
import os
import time
from collections import OrderedDict
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np
import onnx

from fixtrace.backends import cuda_status, get_backend
from fixtrace.errors import FixtraceError, TargetError
from fixtrace.explanation import ClassScore, Explanation, LayerFixations
from fixtrace.fixations import BacktrackPlan, FixationOptions, FixationSet
from fixtrace.fixations.walk import BacktrackResult, Tensors, find_logits
from fixtrace.images.geometry import Geometry
from fixtrace.images.load import ImageSource, load_image
from fixtrace.images.preprocess import Preset, get_preset, input_size, preprocess
from fixtrace.labels import class_names
from fixtrace.methods import METHODS, GradualExtrapolation, MapMethod
from fixtrace.methods.base import upsample
from fixtrace.methods.cam import last_spatial_layer
from fixtrace.model.layer_graph import LayerGraph
from fixtrace.model.load import ModelSource, load_model
from fixtrace.render.box import method_box_threshold
from fixtrace.render.heatmap import DEFAULT_SIGMA, heatmap, inlier_mask
from fixtrace.runtime.session import Session


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

    Raises:
        ModelError: the model cannot be read or run.
        UnsupportedOpError: a node between the input and the logits has no rule.
        FixtraceError: ``device="cuda"`` where CUDA cannot run; an unknown method or bad layer.
    """

    def __init__(self, model: ModelSource, *, preset: str | Preset = "imagenet", conv_location: str = "argmax",
                 output: str | None = None, labels: str | Path | None = None, threads: int = 0, device: str = "auto",
                 method: str = "fixations", layer: str | None = None, ge: bool = False) -> None:
        self.source = str(model) if isinstance(model, (str, os.PathLike)) else type(model).__name__
        self.graph = LayerGraph.from_model(load_model(model))
        self.preset = get_preset(preset)
        self.options = FixationOptions(conv_location=conv_location)
        width, height = input_size(self.graph.image_input, self.preset)
        shapes = self.graph.shapes(self._batch_shape(1, height, width))
        self.logits = find_logits(self.graph, output)
        self.method = method
        self.plan: BacktrackPlan | None = None
        self.map_method: MapMethod | None = None
        if method == "fixations":
            if layer is not None:
                raise FixtraceError("--layer picks the layer of the layer methods (cam, gradcam, guided-gradcam), not of fixations")
            self.plan = BacktrackPlan(self.graph, self.options, output)
            keep, touched = self.plan.needs, self.plan.touched
        elif method in METHODS:
            self.map_method = METHODS[method](self.graph, self.logits, layer=layer, shapes=shapes)
            keep, touched = self.map_method.needs, self.map_method.touched
        else:
            raise FixtraceError(f"unknown method {method!r}; methods: {', '.join(['fixations', *METHODS])}")
        self.extrapolation: GradualExtrapolation | None = None
        self.ge_layer: str | None = None
        if ge:
            if self.map_method is not None and not self.map_method.coarse_maps:
                raise FixtraceError(self.map_method.no_coarse_maps())
            self.extrapolation = GradualExtrapolation(self.graph, shapes)
            keep = keep | self.extrapolation.needs
            if self.plan is not None:  # fixations: the coarse map is their count on the last spatial map
                self.ge_layer = last_spatial_layer(self.graph, shapes)
        unknown = {t for t in touched if t not in shapes}
        self.backend = get_backend(device)
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if cuda_status()["gpu"] and self.backend.name == "cuda" else None
        self.session = Session(self.graph, keep | unknown | {self.logits}, providers=providers, threads=threads)
        #: The box threshold used unless ``explain`` is given one.
        self.box_threshold = method_box_threshold(method, ge)
        self.labels_file = labels
        self._names: list[str] | None = class_names(self.num_classes, labels) if self.num_classes > 0 else None

    def _batch_shape(self, batch: int, height: int, width: int) -> tuple[int, ...]:
        spec = self.graph.image_input
        channels = spec.channels or 3
        return (batch, channels, height, width) if spec.layout == "NCHW" else (batch, height, width, channels)

    def explain(self, image: ImageSource, target: int | Sequence[int] | None = None, top_k: int | None = None, *,
                outlier_removal: bool = True, sigma: float = DEFAULT_SIGMA, box_threshold: float | None = None,
                ) -> Explanation | list[Explanation]:
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
            TargetError: a class index outside the model's outputs.
        """
        check_render_options(sigma, box_threshold)
        t0 = time.perf_counter()
        photo = load_image(image)
        sample, geometry = preprocess(photo, self.graph.image_input, self.preset)
        load_ms = (time.perf_counter() - t0) * 1e3
        return self.explain_prepared(photo, sample[None], geometry, target, top_k, outlier_removal=outlier_removal,
                                     sigma=sigma, box_threshold=box_threshold, load_ms=load_ms)

    def explain_many(self, images: Sequence[ImageSource], target: int | Sequence[int] | None = None,
                     top_k: int | None = None, *, batch_size: int = 8, outlier_removal: bool = True,
                     sigma: float = DEFAULT_SIGMA, box_threshold: float | None = None) -> Iterator[BatchItem]:
        """Explain many photos, ``batch_size`` at a time through one forward and one walk.

        A photo that fails (unreadable, or its batch fails and it fails again alone) yields its
        error; the others go on.

        Args:
            images: paths, bytes, PIL images or arrays.
            target, top_k, outlier_removal, sigma, box_threshold: as in ``explain``.
            batch_size: photos per forward and walk (capped by a fixed batch dim of the model).

        Yields:
            One BatchItem per photo, in order.

        Raises:
            TargetError: a class index outside the model's outputs (before any photo is run).
            FixtraceError: a bad render option or batch size.
        """
        check_render_options(sigma, box_threshold)
        if batch_size < 1:
            raise FixtraceError(f"the batch size must be at least 1, not {batch_size}")
        self.check_targets(target, top_k)
        fixed = self.graph.image_input.shape[0]
        size = min(batch_size, fixed) if isinstance(fixed, int) and fixed > 0 else batch_size
        render = dict(outlier_removal=outlier_removal, sigma=sigma, box_threshold=box_threshold)
        for first in range(0, len(images), size):
            loaded: list[tuple[int, np.ndarray, np.ndarray, Geometry]] = []
            failed: dict[int, FixtraceError] = {}
            t0 = time.perf_counter()
            for k in range(first, min(first + size, len(images))):
                try:
                    photo = load_image(images[k])
                    sample, geometry = preprocess(photo, self.graph.image_input, self.preset)
                    loaded.append((k, photo, sample, geometry))
                except FixtraceError as exc:
                    failed[k] = exc
            load_ms = (time.perf_counter() - t0) * 1e3 / max(len(loaded), 1)
            done = self._run_or_retry_alone(loaded, target, top_k, render, load_ms)
            for k in range(first, min(first + size, len(images))):
                result = done.get(k, failed.get(k))
                if isinstance(result, FixtraceError):
                    yield BatchItem(k, images[k], error=result)
                else:
                    yield BatchItem(k, images[k], explanations=result)

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
        scores, targets = [], []
        for logits in all_logits:
            probability = np.exp(logits - logits.max())
            probability /= probability.sum()
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
        info = {"model": self.source, "providers": self.session.providers_in_use, **self.backend.describe(),
                "batch_size": n, "timings_ms": timings, "versions": _versions()}
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
                    heat = _unit(geometries[b].to_photo(sharp[b]))
                timings = {"load_ms": load_ms, "forward_ms": forward_ms, "backtrack_ms": (t4 - t3) * 1e3,
                           "render_ms": (time.perf_counter() - t5) * 1e3}
                score, top_classes = scores[b]
                results[b].append(Explanation(
                    image=photos[b], target=score(targets[b][rank]), top_classes=top_classes,
                    points=xy, counts=counts, inliers=keep, heatmap=heat, per_layer=self._layers(walk, tensors, b),
                    box_threshold=box_threshold, settings=settings, info=self._info(n, timings),
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
                heat = _unit(geometries[b].to_photo(maps[b]))
                timings = {"load_ms": load_ms, "forward_ms": forward_ms, "backward_ms": (t4 - t3) * 1e3,
                           "render_ms": (time.perf_counter() - t5) * 1e3}
                score, top_classes = scores[b]
                results[b].append(Explanation(
                    image=photos[b], target=score(chosen[b]), top_classes=top_classes, points=np.zeros((0, 2)),
                    counts=np.zeros(0), inliers=np.zeros(0, dtype=bool), heatmap=heat, per_layer={},
                    box_threshold=box_threshold, settings=settings, info=self._info(n, timings), input_map=maps[b],
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
        """Scores per image in the logits tensor."""
        width, height = input_size(self.graph.image_input, self.preset)
        shape = self.graph.shapes(self._batch_shape(1, height, width)).get(self.logits)
        return int(np.prod(shape[1:])) if shape else -1

    def _scorer(self, logits: np.ndarray, probability: np.ndarray):
        """A function class index -> ClassScore for this image."""
        if self._names is None or len(self._names) != logits.size:
            self._names = class_names(logits.size, self.labels_file)
        names = self._names
        return lambda i: ClassScore(i, names[i], float(probability[i]), float(logits[i]))

    def check_targets(self, target: int | Sequence[int] | None, top_k: int | None, n: int | None = None) -> list[int]:
        """Validate the requested classes before any image is run.

        Args:
            target: class index or indices, or None.
            top_k: number of best classes, or None.
            n: number of classes (default: read from the graph).

        Returns:
            The explicit targets (empty when the best classes are wanted).

        Raises:
            TargetError: an index outside 0..n-1, or top_k outside 1..n.
        """
        n = self.num_classes if n is None else n
        if top_k is not None:
            if n > 0 and not 1 <= top_k <= n or top_k < 1:
                raise TargetError(f"top-k must be between 1 and {n} (the model's classes), not {top_k}")
            return []
        if target is None:
            return []
        wanted = list(target) if isinstance(target, (list, tuple)) else [target]
        for t in wanted:
            if not isinstance(t, (int, np.integer)) or t < 0 or (n > 0 and t >= n):
                raise TargetError(f"class index {t} is out of range: the model has {n} classes (0..{n - 1})")
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


def _unit(photo_map: np.ndarray) -> np.ndarray:
    """A non-negative map scaled to a maximum of 1 (float32)."""
    positive = np.maximum(photo_map, 0)
    top = float(positive.max())
    return (positive / top if top > 0 else positive).astype(np.float32)


_CACHE: "OrderedDict[tuple, Explainer]" = OrderedDict()
_CACHE_SIZE = 4


def explain(model: ModelSource, image: ImageSource, target: int | Sequence[int] | None = None, top_k: int | None = None,
            *, preset: str | Preset = "imagenet", conv_location: str = "argmax", labels: str | Path | None = None,
            device: str = "auto", method: str = "fixations", layer: str | None = None, ge: bool = False,
            **kwargs: Any) -> Explanation | list[Explanation]:
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
        **kwargs: passed to ``Explainer.explain`` (outlier_removal, sigma, box_threshold).

    Returns:
        An Explanation, or a list of them for several classes.
    """
    key = (_model_key(model), get_preset(preset).name, conv_location, str(labels), device, method, layer, ge)
    explainer = _CACHE.get(key)
    if explainer is None:
        explainer = Explainer(model, preset=preset, conv_location=conv_location, labels=labels, device=device,
                              method=method, layer=layer, ge=ge)
        _CACHE[key] = explainer
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    _CACHE.move_to_end(key)
    return explainer.explain(image, target, top_k, **kwargs)


def check_render_options(sigma: float, box_threshold: float | None) -> None:
    """Raise FixtraceError unless sigma > 0 and 0 < box_threshold <= 1 (None: the method's default)."""
    if not sigma > 0:
        raise FixtraceError(f"sigma (--sigma) must be a positive fraction of the short side, not {sigma}")
    if box_threshold is not None and not 0 < box_threshold <= 1:
        raise FixtraceError(f"the box threshold (--box-threshold) must be in (0, 1], not {box_threshold}")


def _model_key(model: ModelSource) -> tuple:
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        stat = path.stat() if path.is_file() else None
        return ("path", str(path.resolve()), stat.st_mtime_ns if stat else 0, stat.st_size if stat else 0)
    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else bytes(model)
    return ("bytes", hashlib.sha1(data).hexdigest())


def _versions() -> dict[str, str]:
    import numba
    import onnxruntime

    from fixtrace import __version__

    return {"fixtrace": __version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
            "numba": numba.__version__, "numpy": np.__version__}
