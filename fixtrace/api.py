"""The one-call API: ``explain(model, image)``, and ``Explainer`` to reuse a model across images."""

from __future__ import annotations

import hashlib
import os
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import onnx

from fixtrace.errors import FixtraceError, TargetError
from fixtrace.explanation import ClassScore, Explanation, LayerFixations
from fixtrace.fixations import BacktrackPlan, FixationOptions, FixationSet
from fixtrace.fixations.walk import BacktrackResult, Tensors
from fixtrace.images.geometry import Geometry
from fixtrace.images.load import ImageSource, load_image
from fixtrace.images.preprocess import Preset, get_preset, input_size, preprocess
from fixtrace.labels import class_names
from fixtrace.model.layer_graph import LayerGraph
from fixtrace.model.load import ModelSource, load_model
from fixtrace.render.heatmap import DEFAULT_SIGMA, heatmap, inlier_mask
from fixtrace.runtime.session import Session


class Explainer:
    """A model prepared once (graph, rules, onnxruntime session) and explained on many photos.

    Args:
        model: path, bytes or ``onnx.ModelProto``.
        preset: preprocessing preset name (``imagenet``, ``caffe``, ``tf``, ``raw``) or a Preset.
        conv_location: ``"argmax"`` or ``"centre"`` (see FixationOptions).
        output: graph output to explain (default: the first).
        labels: a labels file (one class name per line).
        threads: onnxruntime intra-op threads (0: onnxruntime's choice).

    Raises:
        ModelError: the model cannot be read or run.
        UnsupportedOpError: a node between the input and the logits has no rule.
    """

    def __init__(self, model: ModelSource, *, preset: str | Preset = "imagenet", conv_location: str = "argmax",
                 output: str | None = None, labels: str | Path | None = None, threads: int = 0) -> None:
        self.source = str(model) if isinstance(model, (str, os.PathLike)) else type(model).__name__
        self.graph = LayerGraph.from_model(load_model(model))
        self.preset = get_preset(preset)
        self.options = FixationOptions(conv_location=conv_location)
        self.plan = BacktrackPlan(self.graph, self.options, output)
        width, height = input_size(self.graph.image_input, self.preset)
        shapes = self.graph.shapes(self._batch_shape(1, height, width))
        unknown = {t for t in self.plan.touched if t not in shapes}
        self.session = Session(self.graph, self.plan.needs | unknown | {self.plan.logits}, threads=threads)
        self.labels_file = labels
        self._names: list[str] | None = class_names(self.num_classes, labels) if self.num_classes > 0 else None

    def _batch_shape(self, batch: int, height: int, width: int) -> tuple[int, ...]:
        spec = self.graph.image_input
        channels = spec.channels or 3
        return (batch, channels, height, width) if spec.layout == "NCHW" else (batch, height, width, channels)

    def explain(self, image: ImageSource, target: int | Sequence[int] | None = None, top_k: int | None = None, *,
                outlier_removal: bool = True, sigma: float = DEFAULT_SIGMA, box_threshold: float = 0.2,
                ) -> Explanation | list[Explanation]:
        """Explain one photo.

        Args:
            image: path, bytes, PIL image or array.
            target: class index (or indices) to explain; default: the predicted class.
            top_k: explain the k best classes instead (one map each).
            outlier_removal: drop isolated points before the heat map (the authors' rule).
            sigma: heat-map blur as a fraction of the photo's short side.
            box_threshold: fraction of the heat map's max that cuts out the box.

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

    def explain_prepared(self, photo: np.ndarray, batch: np.ndarray, geometry: Geometry,
                         target: int | Sequence[int] | None = None, top_k: int | None = None, *,
                         outlier_removal: bool = True, sigma: float = DEFAULT_SIGMA, box_threshold: float = 0.2,
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
        t1 = time.perf_counter()
        values = self.session.run(batch)
        t2 = time.perf_counter()
        timings = {"load_ms": load_ms, "forward_ms": (t2 - t1) * 1e3}
        logits = values[self.plan.logits].reshape(1, -1)[0].astype(np.float64)
        probability = np.exp(logits - logits.max())
        probability /= probability.sum()
        ranking = np.argsort(-probability, kind="stable")
        targets = self.check_targets(target, top_k, logits.size) or [int(i) for i in ranking[: top_k or 1]]
        score = self._scorer(logits, probability)
        top_classes = [score(int(i)) for i in ranking[:5]]
        tensors = self.tensors(values, batch)
        settings = {
            "method": "fixations", "preset": self.preset.name, "conv_location": self.options.conv_location,
            "outlier_removal": outlier_removal, "sigma": sigma, "box_threshold": box_threshold,
        }
        results = []
        for t in targets:
            t3 = time.perf_counter()
            walk = self.plan.run(FixationSet.single([t]), tensors)
            t4 = time.perf_counter()
            xy, counts = self._input_points(walk.input, batch.shape, geometry)
            keep = inlier_mask(xy, counts, geometry.original) if outlier_removal else np.ones(len(xy), dtype=bool)
            heat = heatmap(xy[keep], counts[keep], geometry.original, sigma)
            t5 = time.perf_counter()
            info = {
                "model": self.source, "providers": self.session.providers_in_use, "backend": "cpu",
                "timings_ms": {**timings, "backtrack_ms": (t4 - t3) * 1e3, "render_ms": (t5 - t4) * 1e3},
                "versions": _versions(),
            }
            results.append(Explanation(
                image=photo, target=score(t), top_classes=top_classes,
                points=xy, counts=counts, inliers=keep, heatmap=heat, per_layer=self._layers(walk, tensors),
                box_threshold=box_threshold, settings=settings, info=info,
            ))
        return results[0] if len(results) == 1 and top_k is None and not isinstance(target, (list, tuple)) else results

    def tensors(self, values: dict[str, np.ndarray], batch: np.ndarray) -> Tensors:
        """The values of one run, with the input, shapes, constants and recompute recipes."""
        return Tensors(values | {self.graph.image_input.name: batch}, self.graph.shapes(batch.shape),
                       self.graph.constants, self.plan.recipes)

    @property
    def num_classes(self) -> int:
        """Scores per image in the logits tensor."""
        width, height = input_size(self.graph.image_input, self.preset)
        shape = self.graph.shapes(self._batch_shape(1, height, width)).get(self.plan.logits)
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
        """Input fixations -> one point per input pixel (channels merged) on the photo."""
        positions = fixations.positions(shape)
        rows, cols = (positions[:, 2], positions[:, 3]) if self.graph.image_input.layout == "NCHW" else (positions[:, 1], positions[:, 2])
        pixel = rows * shape[-1 if self.graph.image_input.layout == "NCHW" else -2] + cols
        unique, inverse = np.unique(pixel, return_inverse=True)
        counts = np.bincount(inverse, weights=fixations.count).astype(np.float64)
        width = geometry.input[0]
        return geometry.to_original(unique // width, unique % width), counts

    def _layers(self, walk: BacktrackResult, tensors: Tensors) -> dict[str, LayerFixations]:
        layers = {}
        for name, fixations in walk.per_tensor.items():
            node = self.graph.producer.get(name)
            shape = tensors.shape(name)
            layers[name] = LayerFixations(
                tensor=name, node=node.name if node else "", op_type=node.op_type if node else "Input",
                shape=tuple(shape), fixations=fixations,
            )
        return layers


_CACHE: "OrderedDict[tuple, Explainer]" = OrderedDict()
_CACHE_SIZE = 4


def explain(model: ModelSource, image: ImageSource, target: int | Sequence[int] | None = None, top_k: int | None = None,
            *, preset: str | Preset = "imagenet", conv_location: str = "argmax", labels: str | Path | None = None,
            **kwargs: Any) -> Explanation | list[Explanation]:
    """Explain a photo with CNN Fixations in one call; the prepared model is cached.

    Args:
        model: path, bytes or ``onnx.ModelProto``.
        image: path, bytes, PIL image or array.
        target: class index or indices (default: the predicted class).
        top_k: explain the k best classes (one map each).
        preset: preprocessing preset.
        conv_location: ``"argmax"`` or ``"centre"``.
        labels: labels file.
        **kwargs: passed to ``Explainer.explain`` (outlier_removal, sigma, box_threshold).

    Returns:
        An Explanation, or a list of them for several classes.
    """
    key = (_model_key(model), get_preset(preset).name, conv_location, str(labels))
    explainer = _CACHE.get(key)
    if explainer is None:
        explainer = Explainer(model, preset=preset, conv_location=conv_location, labels=labels)
        _CACHE[key] = explainer
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    _CACHE.move_to_end(key)
    return explainer.explain(image, target, top_k, **kwargs)


def check_render_options(sigma: float, box_threshold: float) -> None:
    """Raise FixtraceError unless sigma > 0 and 0 < box_threshold <= 1."""
    if not sigma > 0:
        raise FixtraceError(f"sigma (--sigma) must be a positive fraction of the short side, not {sigma}")
    if not 0 < box_threshold <= 1:
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
