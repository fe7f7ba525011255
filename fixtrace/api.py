"""The one-call API: ``explain(model, image)``, and ``Explainer`` to reuse a model across images
and methods. A thin facade: the model runner (``runtime``), the methods (``methods``) and the
rendering (``render.build``) do the work."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import os
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import onnx
from PIL import Image

from fixtrace import validate
from fixtrace.backends import DEVICES
from fixtrace.compile import BACKWARDS
from fixtrace.errors import EmptyMapWarning, FixtraceError, ModelError, OptionError
from fixtrace.explanation import ClassScore, Explanation
from fixtrace.fixations.options import CONV_LOCATIONS, DEFAULT_CONV_LOCATION
from fixtrace.images.crops import crop_count, crops_of
from fixtrace.images.geometry import Geometry
from fixtrace.images.load import ImageSource, load_photo
from fixtrace.images.preprocess import preprocess
from fixtrace.images.preset_choice import PresetArg, choose_preset
from fixtrace.labels import class_names
from fixtrace.methods import METHODS, Method, method_names
from fixtrace.methods.base import Maps
from fixtrace.methods.spec import MethodSpec, build, parse_specs
from fixtrace.model.load import ModelSource
from fixtrace.render.box import method_box_threshold
from fixtrace.render.build import explanation, merged_explanation
from fixtrace.render.display import STYLE_OPTIONS, Style
from fixtrace.render.heatmap import DEFAULT_SIGMA
from fixtrace.runtime.prefetch import prefetch
from fixtrace.runtime.runner import Runner
from fixtrace.runtime.session import padded
from fixtrace.runtime.threads import limit_threads, map_in_threads, thread_budget, usable_cores
from fixtrace.targets import check_targets, rank_classes

#: The methods ``method=`` accepts (besides specs with options, lists and ``"all"``).
METHOD_NAMES = tuple(method_names())

#: onnxruntime threads beyond this are a typo, not a machine.
MAX_THREADS = 1024
#: The rendering options of ``explain`` and ``explain_many`` (the pictures' style included).
RENDER_OPTIONS = ("outlier_removal", "sigma", "box_threshold", *STYLE_OPTIONS)
T = TypeVar("T")
#: What selects methods per call.
METHOD_OPTIONS = ("method", "methods")


def _threads_limited(method: Callable[..., T]) -> Callable[..., T]:
    """An Explainer method run with onnxruntime, numba and BLAS held to the Explainer's threads."""

    @functools.wraps(method)
    def limited(self: Explainer, *args: Any, **kwargs: Any) -> T:
        with limit_threads(self.runner.threads):
            return method(self, *args, **kwargs)

    return limited


def _from_runner(name: str, doc: str) -> Any:
    """A read-only attribute of ``Explainer`` that is its runner's."""
    return property(lambda self: getattr(self.runner, name), doc=doc)


@dataclass
class BatchItem:
    """One photo of ``Explainer.explain_many``.

    Attributes:
        index: its position in the input list.
        image: the image as given.
        explanations: the first method's, one per class asked for, best first (None on error).
        error: why it failed (None on success).
        by_method: every asked method's explanations, by method label (empty on error).
    """

    index: int
    image: Any
    explanations: list[Explanation] | None = None
    error: FixtraceError | None = None
    by_method: dict[str, list[Explanation]] = field(default_factory=dict)


class Explainer:
    """A model prepared once (graph, checks, onnxruntime session, backend) and explained on many
    photos, with one method or several: one forward per batch serves them all.

    Args:
        model: path, bytes or ``onnx.ModelProto``.
        preset: the preprocessing: a preset name (``imagenet``, ``caffe``, ``tf``, ``raw``,
            ``efficientnet-lite``, ``letterbox``), a ``Preset``, a JSON file of one, or a
            ``PresetChoice`` (``choose_preset``: a base with fields overridden). Default (None):
            the preset the model carries in its metadata (``fixtrace.preprocessing``), else
            ``imagenet``; ``preset_source`` says which.
        conv_location: fixations' ``"auto"`` (by the model's head), ``"argmax"``, ``"centre"`` or
            ``"coarse-centre"`` (see FixationOptions).
        output: graph output to explain (default: the first).
        labels: a labels file (one class name per line); without one, the names the model
            carries in its metadata (``fixtrace.labels``), else ImageNet's for 1000 classes.
        threads: threads for onnxruntime, numba and BLAS together (0: the libraries' choice).
        device: where the kernels run: ``"auto"`` (CUDA when a GPU is present), ``"cpu"`` or
            ``"cuda"``. On a GPU the forward asks for onnxruntime's CUDA provider too;
            ``session.fallback`` says when it is not available.
        method: the method(s) ``explain`` uses unless told otherwise: a name (``fixations``, the
            default; see ``fixtrace.methods.method_names()``), a spec with options
            (``"occlusion:patch=32"``, ``"gradcam:ge"``), a list or comma-separated list of them,
            or ``"all"``. Each is prepared (and checked on this model) here.
        layer: the tensor the layer methods read (default: the last spatial map).
        ge: sharpen every method's map with Gradual Extrapolation (methods with coarse maps only).
        any_output: explain the output even when it does not look like class scores (see
            ``fixtrace.model.outputs.choose_output``).
        backward: where the gradient methods' walks run: ``"numpy"`` (the rules' numpy form),
            ``"onnx"`` (their ONNX form, run by onnxruntime on the forward's kept tensors) or
            ``"auto"``: onnx for the walks down to the input where every rule has an ONNX form,
            numpy for the Grad-CAM family's short walks and elsewhere (see ``fixtrace.compile.backward``).

    Raises:
        ModelError: the model cannot be read, is not a 1- or 3-channel image classifier, its
            output is not a finite class-score vector, or onnxruntime cannot run it (all checked
            here, on a blank image, before any photo); a method cannot run on it; its metadata
            preset or labels are invalid; the preset declares another input layout.
        UnsupportedOpError: a node between the input and the logits has no rule.
        OptionError: an option of the wrong type or value, an unknown keyword, a bad layer.
        FixtraceError: ``device="cuda"`` where CUDA cannot run.
    """

    def __init__(
        self,
        model: ModelSource,
        *,
        preset: PresetArg = None,
        conv_location: str = DEFAULT_CONV_LOCATION,
        output: str | None = None,
        labels: str | Path | None = None,
        threads: int = 0,
        device: str = "auto",
        method: Any = "fixations",
        layer: str | None = None,
        ge: bool = False,
        any_output: bool = False,
        backward: str = "auto",
        **unknown: Any,
    ) -> None:
        validate.keywords(unknown, _INIT_OPTIONS, "Explainer()")
        options = explainer_options(
            preset=preset,
            conv_location=conv_location,
            output=output,
            labels=labels,
            threads=threads,
            device=device,
            method=method,
            layer=layer,
            ge=ge,
            any_output=any_output,
            backward=backward,
        )
        self.runner = Runner(
            model, options["preset"], options["output"], options["threads"], options["device"], options["any_output"]
        )
        #: Options that apply to every method taking them.
        self.defaults = {"conv_location": options["conv_location"], "layer": options["layer"]}
        self.ge: bool = options["ge"]
        #: Where the gradient walks run (``compile.backward.BACKWARDS``).
        self.backward: str = options["backward"]
        #: Method label -> where its gradient walk runs (``"onnx"``, ``"numpy"``; absent: no walk).
        self.walks_on: dict[str, str] = {}
        self._methods: dict[str, Method] = {}
        #: Methods checked on a blank image (after onnxruntime loaded the model).
        self._checked: set[str] = set()
        #: Methods ``all`` left out, with why (label -> reason).
        self.skipped: dict[str, str] = {}
        self._several = _several(method)
        #: The methods ``explain`` uses by default.
        self.specs = self._usable(options["method"], all_asked=_asks_all(method))
        self.runner.output  # noqa: B018  # onnxruntime loads the model here, after the methods' own checks
        self.specs = self._usable(self.specs, all_asked=_asks_all(method))
        if options["layer"] is not None and not any("layer" in METHODS[s.name].parameters for s in self.specs):
            takers = ", ".join(name for name, cls in METHODS.items() if "layer" in cls.parameters)
            raise OptionError(f"--layer picks the layer of the layer methods ({takers}), not of {self.method}")
        self.labels_file = options["labels"]
        self._names: list[str] = class_names(self.num_classes, self.labels_file, self.graph.model)

    # -- what the model and its methods are -----------------------------------------------------
    graph = _from_runner("graph", "The layer graph (``LayerGraph``).")
    logits = _from_runner("logits", "The class-score tensor the methods start from.")
    output = _from_runner("output", "The explained output (``ClassOutput``): its kind of scores and why it was chosen.")
    session = _from_runner("session", "The onnxruntime session of the explaining forward.")
    backend = _from_runner("backend", "Where the kernels run.")
    preset = _from_runner("preset", "The preprocessing preset (a ``Preset``).")
    preset_source = _from_runner(
        "preset_source",
        "Where the preset came from: ``given`` (a name or Preset), ``file``, ``metadata`` (the model's) or ``default``.",
    )
    source = _from_runner("source", "The model as given (a path, or the type of what was passed).")

    @property
    def num_classes(self) -> int:
        """Scores per image in the explained output."""
        return self.output.classes

    @property
    def method(self) -> str:
        """The label of the default method (the first, when there are several)."""
        return self.specs[0].label

    @property
    def map_method(self) -> Method:
        """The default method, prepared."""
        return self.prepared(self.specs[0])

    @property
    def plan(self):
        """The backward walk of the default fixations method (``BacktrackPlan``)."""
        spec = next((s for s in self.specs if s.name == "fixations"), MethodSpec("fixations"))
        method = self.prepared(spec)
        return getattr(method, "inner", method).plan

    @property
    def box_threshold(self) -> float:
        """The default method's box threshold."""
        return method_box_threshold(self.specs[0].name, self.specs[0].ge)

    def prepared(self, spec: MethodSpec | str) -> Method:
        """A method prepared on this model (once; later calls reuse it).

        Raises:
            OptionError, ModelError, UnsupportedOpError: the method cannot run on this model.
        """
        spec = self._with_ge(parse_specs([spec])[0] if not isinstance(spec, MethodSpec) else spec)
        method = self._methods.get(spec.label)
        if method is None:
            method = build(spec, self.graph, self.logits, self.runner.shapes, self.defaults)
            self._methods[spec.label] = method
        if spec.label not in self._checked and self.runner.probed:
            from fixtrace.compile.backward import choose_backward  # emits ONNX nodes: only for gradient methods

            walks_on = choose_backward(method, self.backward, self.runner)
            if walks_on:
                self.walks_on[spec.label] = walks_on
            self.runner.prepare(method)
            self._checked.add(spec.label)
        return method

    def method_notes(self) -> list[str]:
        """What a user should know about the Explainer's methods on this model (a map blind to
        the photo, ...), one line each, led by the method (``Method.notes``)."""
        return [f"{spec.label}: {note}" for spec in self.specs for note in self.prepared(spec).notes()]

    def supports(self, spec: MethodSpec | str) -> str:
        """Why a method cannot run on this model ("" when it can)."""
        try:
            self.prepared(spec)
        except FixtraceError as exc:
            return str(exc)
        return ""

    def tensors(self, values: dict[str, np.ndarray], batch: np.ndarray):
        """The values of one run, with the input, shapes, constants and recompute recipes."""
        return self.runner.tensors(values, batch)

    def check_targets(self, target: int | Sequence[int] | None, top_k: int | None, n: int | None = None) -> list[int]:
        """Validate the requested classes before any image is run (see ``fixtrace.targets.check_targets``).

        Raises:
            TargetError: a bad class index or top_k.
            OptionError: both target and top_k.
        """
        return check_targets(target, top_k, self.num_classes if n is None else n)

    def _usable(self, asked: list[MethodSpec], all_asked: bool) -> list[MethodSpec]:
        """The asked methods, prepared; with ``all``, those this model cannot run are left out (``skipped``)."""
        usable = []
        for spec in map(self._with_ge, asked):
            if all_asked:
                reason = self.supports(spec)
                if reason:
                    self.skipped[spec.label] = reason
                    continue
            else:
                self.prepared(spec)
            usable.append(spec)
        if not usable:
            reasons = "; ".join(f"{label}: {why}" for label, why in self.skipped.items())
            raise ModelError(f"no method can run on this model: {reasons}")
        return usable

    def _specs(self, method: Any, methods: Any) -> tuple[list[MethodSpec], bool]:
        """The methods of one call (default: the Explainer's) and whether results come by method."""
        if method is not None and methods is not None:
            raise OptionError("give method (one) or methods (several), not both")
        if methods is not None:
            return (
                self._usable(parse_specs(methods), _asks_all(methods))
                if _asks_all(methods)
                else [self._check(s) for s in parse_specs(methods)]
            ), True
        if method is not None:
            specs = parse_specs(method)
            if _several(method):
                return self._usable(specs, _asks_all(method)), True
            return [self._check(specs[0])], False
        return self.specs, self._several

    def _check(self, spec: MethodSpec) -> MethodSpec:
        spec = self._with_ge(spec)
        self.prepared(spec)
        return spec

    def _with_ge(self, spec: MethodSpec) -> MethodSpec:
        """The spec, sharpened when the Explainer was made with ``ge=True``."""
        return dataclasses.replace(spec, ge=spec.ge or self.ge)

    # -- explaining -------------------------------------------------------------------------------
    def explain(
        self,
        image: ImageSource,
        target: int | Sequence[int] | None = None,
        top_k: int | None = None,
        *,
        outlier_removal: bool = True,
        sigma: float = DEFAULT_SIGMA,
        box_threshold: float | None = None,
        method: Any = None,
        methods: Any = None,
        crops: int = 1,
        **unknown: Any,
    ) -> Any:
        """Explain one photo.

        Args:
            image: path, bytes, PIL image or array.
            target: class index (or indices) to explain; default: the predicted class.
            top_k: explain the k best classes instead (one map each).
            outlier_removal: drop isolated fixation points before the heat map (the authors' rule).
            sigma: fixations' heat-map blur as a fraction of the photo's short side.
            box_threshold: fraction of the heat map's max that cuts out the box (default: the
                method's, ``fixtrace.render.box.BOX_THRESHOLDS``).
            method: one method for this call (a name or spec; default: the Explainer's).
            methods: several methods for this call (a list, a comma-separated string or ``"all"``):
                one forward, then each method.
            crops: multi-crop (the fixations paper's test-time crops): 1 (the preset's crop),
                2 (and its mirror), 5 (the four corners and the centre of the resized photo) or
                10 (and their mirrors). The class is ranked on the crops' mean probabilities;
                each crop whose own top class is the explained one is explained, and their
                fixations (or maps) are merged on the photo (``settings["crops_used"]``).
            **unknown: the pictures' style (``fixtrace.render.display.Style``): ``colormap``
                (jet, viridis, inferno, gray), ``legend`` (class, probability, method and colour
                bar on the overlay; default True), ``points`` (draw the fixations), ``view``
                (auto, abs, signed), ``clip`` (the white point's percentile; default the method's).

        Returns:
            One Explanation for a single class; a list, best first, when ``top_k`` or several
            targets are asked for. With several methods: a dict, method label -> that.

        Raises:
            ImageError: the image cannot be read.
            InputShapeError: the preprocessed image does not fit the model.
            TargetError: a class index outside the model's outputs, or a bad ``top_k``.
            OptionError: a bad option or method, an unknown keyword, or both target and top_k.
        """
        validate.keywords(unknown, RENDER_OPTIONS, "Explainer.explain()")
        render = render_options(outlier_removal, sigma, box_threshold, **unknown)
        specs, by_method = self._specs(method, methods)
        self.check_targets(target, top_k)
        crops = crop_count(crops, self.preset, self.graph.image_input.fixed_batch)
        t0 = time.perf_counter()
        photo = load_photo(image)
        loaded = self._load(0, photo.pixels, photo.size, crops)
        load_ms = (time.perf_counter() - t0) * 1e3
        results = self._explain_loaded([loaded], target, top_k, specs, render, load_ms)[0]
        single = top_k is None and not isinstance(target, (list, tuple, np.ndarray))
        shaped = {label: (found[0] if single and len(found) == 1 else found) for label, found in results.items()}
        return shaped if by_method else next(iter(shaped.values()))

    def explain_many(
        self,
        images: Iterable[ImageSource],
        target: int | Sequence[int] | None = None,
        top_k: int | None = None,
        *,
        batch_size: int = 8,
        outlier_removal: bool = True,
        sigma: float = DEFAULT_SIGMA,
        box_threshold: float | None = None,
        method: Any = None,
        methods: Any = None,
        crops: int = 1,
        readers: int | None = None,
        **unknown: Any,
    ) -> Generator[BatchItem, None, None]:
        """Explain many photos, ``batch_size`` at a time through one forward (and each method once).

        The photos are read one batch ahead, on reader threads while the current batch is explained
        (a generator of paths streams, at most two batches held: an image must not change once
        handed over, unless ``readers=0``), and a photo that fails (unreadable, or its batch fails
        and it fails again alone) yields its error; the others go on.

        Args:
            images: paths, bytes, PIL images or arrays (any iterable, not one image).
            target, top_k, outlier_removal, sigma, box_threshold, method, methods, crops: as in ``explain``.
            batch_size: photos per forward (capped by a fixed batch dim of the model); with
                ``crops`` above 1, each photo's crops are one forward.
            readers: threads that read the next batch ahead (default: a quarter of ``threads``,
                1 to 4); 0 reads each photo in the calling thread when its batch is made, for
                images that change after they are handed over (a reused frame buffer).
            **unknown: the pictures' style, as in ``explain``.

        Yields:
            One BatchItem per photo, in order.

        Raises:
            TargetError: a class index outside the model's outputs (before any photo is run).
            OptionError: a bad option, batch size, or a single image instead of several.
        """
        validate.keywords(unknown, (*RENDER_OPTIONS, "batch_size", "readers"), "Explainer.explain_many()")
        render = render_options(outlier_removal, sigma, box_threshold, **unknown)
        batch_size = validate.integer("batch_size", batch_size, 1, flag="--batch-size")
        if isinstance(images, (str, bytes, bytearray, os.PathLike, np.ndarray, Image.Image)):
            raise OptionError(
                f"explain_many takes several images (a list or any iterable), not a single "
                f"{type(images).__name__}; use explain() for one image"
            )
        specs, _ = self._specs(method, methods)
        self.check_targets(target, top_k)
        crops = crop_count(crops, self.preset, self.graph.image_input.fixed_batch)
        size = min(batch_size, self.graph.image_input.fixed_batch or batch_size)
        # The next batch's photos are decoded and preprocessed on reader threads while this one runs
        # (size + 1: once a batch is taken, the whole next one is in flight).
        readers = self._readers() if readers is None else validate.integer("readers", readers, 0)
        ahead = prefetch(enumerate(images), functools.partial(self._read, crops=crops), readers, ahead=size + 1)
        try:
            while chunk := list(itertools.islice(ahead, size)):
                loaded = [entry.value for entry in chunk if entry.value is not None]
                failed = {entry.item[0]: entry.error for entry in chunk if entry.error is not None}
                load_ms = sum(entry.ms for entry in chunk if entry.value is not None) / max(len(loaded), 1)
                done = self._run_or_retry_alone(loaded, target, top_k, specs, render, load_ms)
                for entry in chunk:
                    k, image = entry.item
                    result = done.get(k, failed.get(k))
                    if isinstance(result, dict):
                        yield BatchItem(k, image, explanations=next(iter(result.values())), by_method=result)
                    else:
                        yield BatchItem(k, image, error=result)
        finally:
            ahead.close()

    def _read(self, numbered: tuple[int, ImageSource], crops: int) -> _Loaded:
        """Photo ``k`` of ``explain_many`` read and preprocessed (``numbered`` is ``(k, image)``).

        Raises:
            ImageError, OptionError: as ``load_photo`` and ``_load``.
        """
        k, image = numbered
        photo = load_photo(image)
        return self._load(k, photo.pixels, photo.size, crops)

    def _readers(self) -> int:
        """Threads that read ahead in ``explain_many`` by default: a quarter of the Explainer's
        thread limit (every usable core when it has none), 1 to 4: decoding takes a few ms a
        photo, explaining more."""
        return max(1, min(4, (self.runner.threads or usable_cores()) // 4))

    def _run_or_retry_alone(
        self,
        loaded: list[_Loaded],
        target: Any,
        top_k: int | None,
        specs: list[MethodSpec],
        render: dict[str, Any],
        load_ms: float,
    ) -> dict[int, dict[str, list[Explanation]] | FixtraceError]:
        """Explain a loaded batch; if it fails, each photo alone, so only the culprit fails."""
        if not loaded:
            return {}
        try:
            results = self._explain_loaded(loaded, target, top_k, specs, render, load_ms)
            return {item.index: r for item, r in zip(loaded, results)}
        except FixtraceError as exc:
            if len(loaded) == 1:
                return {loaded[0].index: exc}
        done: dict[int, dict[str, list[Explanation]] | FixtraceError] = {}
        for item in loaded:
            done |= self._run_or_retry_alone([item], target, top_k, specs, render, load_ms)
        return done

    def _load(self, index: int, pixels: np.ndarray, size: tuple[int, int], crops: int) -> _Loaded:
        """A photo preprocessed: one sample, or its ``crops`` crops (``crops_of``).

        Raises:
            ImageError, OptionError: as ``preprocess`` and ``crops_of``.
        """
        if crops == 1:
            sample, geometry = preprocess(pixels, self.graph.image_input, self.preset, size)
            return _Loaded(index, pixels, sample[None], [geometry])
        made = crops_of(pixels, self.graph.image_input, self.preset, crops, size)
        return _Loaded(index, pixels, np.stack([c.sample for c in made]), [c.geometry for c in made], [c.name for c in made])

    def _explain_loaded(
        self,
        loaded: list[_Loaded],
        target: Any,
        top_k: int | None,
        specs: list[MethodSpec],
        render: dict[str, Any],
        load_ms: float,
    ) -> list[dict[str, list[Explanation]]]:
        """Loaded photos explained: one forward for all when each is one sample, else one per
        photo's crops."""
        if all(item.crops is None for item in loaded):
            photos, geometries = [item.pixels for item in loaded], [item.geometries[0] for item in loaded]
            batch = np.concatenate([item.samples for item in loaded])
            return self._explain_batch(photos, batch, geometries, target, top_k, specs, render, load_ms)
        return [
            self._explain_batch([item.pixels], item.samples, item.geometries, target, top_k, specs, render, load_ms, item.crops)[
                0
            ]
            for item in loaded
        ]

    def explain_batch(
        self,
        photos: list[np.ndarray],
        batch: np.ndarray,
        geometries: list[Geometry],
        target: int | Sequence[int] | None = None,
        top_k: int | None = None,
        *,
        outlier_removal: bool = True,
        sigma: float = DEFAULT_SIGMA,
        box_threshold: float | None = None,
        load_ms: float = 0.0,
        method: Any = None,
        **style: Any,
    ) -> list[list[Explanation]]:
        """Explain preprocessed photos with one method: one forward, then the method on the batch.

        Args:
            photos: the original photos.
            batch: the model input, one row per photo.
            geometries: how each row was cut from its photo.
            target, top_k, outlier_removal, sigma, box_threshold, method: as in ``explain``.
            load_ms: time spent loading one photo, reported in the timings.
            **style: the pictures' style, as in ``explain``.

        Returns:
            Per photo, its explanations (one per class asked for, best first).
        """
        validate.keywords(style, STYLE_OPTIONS, "Explainer.explain_batch()")
        specs, _ = self._specs(method, None)
        render = render_options(outlier_removal, sigma, box_threshold, **style)
        results = self._explain_batch(photos, batch, geometries, target, top_k, specs[:1], render, load_ms)
        return [next(iter(r.values())) for r in results]

    @_threads_limited
    def _explain_batch(
        self,
        photos: list[np.ndarray],
        batch: np.ndarray,
        geometries: list[Geometry],
        target: Any,
        top_k: int | None,
        specs: list[MethodSpec],
        render: dict[str, Any],
        load_ms: float,
        crops: list[str] | None = None,
    ) -> list[dict[str, list[Explanation]]]:
        """One forward keeping what every asked method needs; then per method, per asked class
        rank, one call on the whole batch; then an Explanation per photo. onnxruntime, numba and
        BLAS are held to ``threads`` together meanwhile.

        With ``crops`` (their names), ``batch`` holds crops of the one photo of ``photos``: the
        classes are ranked on their mean, and the crops agreeing with each class are merged
        into one Explanation (``_merge_crops``)."""
        methods = {spec.label: (spec, self.prepared(spec)) for spec in specs}
        rows = len(batch)
        t1 = time.perf_counter()
        # A fixed batch dim takes exactly that many rows: zero rows fill it, explained for the
        # first photo's class and dropped.
        run = self.runner.run(padded(batch, self.graph.image_input.fixed_batch))
        forward_ms = (time.perf_counter() - t1) * 1e3
        scores = run.scores[:rows]
        explicit = self.check_targets(target, top_k, scores.shape[1])
        ranked = rank_classes(scores, self.output, self._names, explicit, top_k, average=crops is not None)
        n = len(photos)
        results: list[dict[str, list[Explanation]]] = [{label: [] for label in methods} for _ in range(n)]
        for label, (spec, method) in methods.items():
            box_threshold = render["box_threshold"] or method_box_threshold(spec.name, spec.ge)
            settings = {
                "method": spec.name,
                "spec": label,
                "preset": self.preset.name,
                "preprocessing": self.preset.to_dict(),
                "preprocessing_source": self.preset_source,
                "box_threshold": box_threshold,
                "gradual_extrapolation": spec.ge,
                **method.settings(),
                **({"backward": self.walks_on[label]} if label in self.walks_on else {}),
            }
            if spec.name == "fixations":
                settings |= {"outlier_removal": render["outlier_removal"], "sigma": render["sigma"]}
            notes = method.notes()
            for rank in range(len(ranked[0][2])):
                chosen = [targets[rank] for _, _, targets in ranked]
                t2 = time.perf_counter()
                per_row = chosen * len(crops) if crops else chosen
                made = method.explain(run, per_row + per_row[:1] * (run.size - rows))
                method_ms = (time.perf_counter() - t2) * 1e3
                if crops:
                    timings = {"load_ms": load_ms, "forward_ms": forward_ms, "method_ms": method_ms}
                    context = (settings, notes, method.display, render, box_threshold, self._info(len(crops), timings))
                    results[0][label].append(
                        self._merge_crops(made, scores, crops, photos[0], geometries, ranked[0], chosen[0], context)
                    )
                    continue

                timings = {"load_ms": load_ms, "forward_ms": forward_ms, "method_ms": method_ms}
                context = (settings, notes, method.display, render, box_threshold, timings)
                one = functools.partial(self._rendered, made, photos, geometries, ranked, chosen, context)
                # Photos are rendered in threads (photo-size numpy passes and nogil kernels).
                for b, e in enumerate(map_in_threads(one, range(n), thread_budget())):
                    if e.empty:
                        warnings.warn(e.empty_message(), EmptyMapWarning, stacklevel=3)
                    results[b][label].append(e)
        return results

    def _rendered(
        self,
        made: Maps,
        photos: list[np.ndarray],
        geometries: list[Geometry],
        ranked: list[Any],
        chosen: list[int],
        context: tuple[dict[str, Any], list[str], Any, dict[str, Any], float, dict[str, float]],
        b: int,
    ) -> Explanation:
        """Photo ``b``'s Explanation of a method's maps (``_explain_batch``'s ``context``)."""
        settings, notes, display, render, box_threshold, batch_timings = context
        t3 = time.perf_counter()
        score, top_classes, _ = ranked[b]
        timings = dict(batch_timings)
        e = explanation(
            made,
            b,
            photos[b],
            geometries[b],
            score(chosen[b]),
            top_classes,
            outlier_removal=render["outlier_removal"],
            sigma=render["sigma"],
            box_threshold=box_threshold,
            settings=settings,
            info=self._info(len(photos), timings),
            display=display,
            style=render["style"],
            notes=notes,
            bgr=self.preset.bgr,
        )
        timings["render_ms"] = (time.perf_counter() - t3) * 1e3
        return e

    def _merge_crops(
        self,
        made: Maps,
        scores: np.ndarray,
        crops: list[str],
        photo: np.ndarray,
        geometries: list[Geometry],
        ranked: tuple[Callable[[int], ClassScore], list[ClassScore], list[int]],
        target: int,
        context: tuple[dict[str, Any], list[str], Any, dict[str, Any], float, dict[str, Any]],
    ) -> Explanation:
        """The Explanation of ``target`` merged from the crops whose own top class it is (all
        of them, with a note, when none is)."""
        settings, notes, display, render, box_threshold, info = context
        score, top_classes, _ = ranked
        agree = [i for i in range(len(crops)) if int(np.argmax(scores[i])) == target]
        notes = list(notes)
        if not agree:
            agree = list(range(len(crops)))
            notes.append(f"no crop's own top class is {self._names[target]}: all {len(crops)} crops merged")
        return merged_explanation(
            made,
            agree,
            photo,
            [geometries[i] for i in agree],
            score(target),
            top_classes,
            outlier_removal=render["outlier_removal"],
            sigma=render["sigma"],
            box_threshold=box_threshold,
            settings=settings | {"crops": len(crops), "crops_used": [crops[i] for i in agree]},
            info=info,
            display=display,
            style=render["style"],
            notes=notes,
        )

    def _info(self, n: int, timings: dict[str, float]) -> dict[str, Any]:
        info = {
            "model": self.source,
            "output": self.output.to_json(),
            "providers": self.session.providers_in_use,
            **self.backend.describe(),
            "batch_size": n,
            "timings_ms": timings,
            "versions": versions(),
        }
        if self.session.fallback:
            info["forward_fallback"] = self.session.fallback
        return info


@dataclass
class _Loaded:
    """A photo of a batch, read and preprocessed: one sample, or its crops (named in ``crops``)."""

    index: int
    pixels: np.ndarray
    samples: np.ndarray
    geometries: list[Geometry]
    crops: list[str] | None = None


def _several(method: Any) -> bool:
    """Whether ``method`` asks for several methods (a list, a comma-separated string or ``all``)."""
    if isinstance(method, str):
        return "," in method or method.strip().lower() == "all"
    return isinstance(method, (list, tuple))


def _asks_all(method: Any) -> bool:
    texts = method.split(",") if isinstance(method, str) else method if isinstance(method, (list, tuple)) else []
    return any(isinstance(t, str) and t.strip().lower() == "all" for t in texts)


_CACHE: OrderedDict[tuple, Explainer] = OrderedDict()
_CACHE_SIZE = 4
#: What ``Explainer()`` takes besides the model.
_INIT_OPTIONS = (
    "preset",
    "conv_location",
    "output",
    "labels",
    "threads",
    "device",
    "method",
    "layer",
    "ge",
    "any_output",
    "backward",
)


def explain(
    model: ModelSource,
    image: ImageSource,
    target: int | Sequence[int] | None = None,
    top_k: int | None = None,
    *,
    preset: PresetArg = None,
    conv_location: str = DEFAULT_CONV_LOCATION,
    labels: str | Path | None = None,
    device: str = "auto",
    method: Any = "fixations",
    layer: str | None = None,
    ge: bool = False,
    **options: Any,
) -> Any:
    """Explain a photo in one call (CNN Fixations by default); the prepared model is cached.

    Args:
        model: path, bytes or ``onnx.ModelProto``.
        image: path, bytes, PIL image or array.
        target: class index or indices (default: the predicted class).
        top_k: explain the k best classes (one map each).
        preset: preprocessing (see Explainer; default: the model's metadata preset, else imagenet).
        conv_location: ``"auto"``, ``"argmax"``, ``"centre"`` or ``"coarse-centre"``.
        labels: labels file.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"`` (see Explainer).
        method, layer, ge: the explanation method (see Explainer).
        **options: ``Explainer.explain``'s (outlier_removal, sigma, box_threshold, crops, and
            the pictures' colormap, legend, points, view, clip) and ``Explainer``'s others (output,
            threads, any_output, backward).

    Returns:
        An Explanation, or a list of them for several classes; with several methods (``method``
        a list or ``"all"``, or ``methods=``), a dict, method label -> that.

    Raises:
        ModelError, ImageError, TargetError, OptionError: as ``Explainer`` and ``Explainer.explain``.
    """
    init_only = ("output", "threads", "any_output", "backward")
    validate.keywords(options, (*RENDER_OPTIONS, *init_only, "methods", "crops"), "fixtrace.explain()")
    init: dict[str, Any] = {k: options.pop(k) for k in init_only if k in options}
    init |= {"preset": preset, "conv_location": conv_location, "labels": labels, "device": device, "method": method}
    init |= {"layer": layer, "ge": ge}
    # The options as given key the cache; Explainer() checks them when it is first made.
    key = (_model_key(model), *((k, repr(v)) for k, v in sorted(init.items())))
    explainer = _CACHE.get(key)
    if explainer is None:
        explainer = Explainer(model, **init)
        _CACHE[key] = explainer
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    _CACHE.move_to_end(key)
    return explainer.explain(image, target, top_k, **options)


def explainer_options(
    *,
    preset: Any,
    conv_location: Any,
    output: Any,
    labels: Any,
    threads: Any,
    device: Any,
    method: Any,
    layer: Any,
    ge: Any,
    any_output: Any,
    backward: Any = "auto",
) -> dict[str, Any]:
    """``Explainer``'s options checked and normalised (method and preset names are case-blind).

    Raises:
        OptionError: naming the option and what it accepts.
    """
    if labels is not None and not isinstance(labels, (str, os.PathLike)):
        raise OptionError(f"labels (--labels) must be the path of a labels file, not {type(labels).__name__}")
    return {
        "preset": choose_preset(preset),
        "conv_location": validate.choice("conv_location", conv_location, CONV_LOCATIONS, "--conv-location"),
        "method": parse_specs(method),
        "output": validate.text("output", output, "--output"),
        "labels": labels,
        "threads": validate.integer("threads", threads, 0, MAX_THREADS, "--threads"),
        "device": validate.choice("device", device, DEVICES, "--device"),
        "layer": validate.text("layer", layer, "--layer"),
        "ge": validate.boolean("ge", ge),
        "any_output": validate.boolean("any_output", any_output),
        "backward": validate.choice("backward", backward, BACKWARDS, "--backward"),
    }


def render_options(outlier_removal: Any, sigma: Any, box_threshold: Any, **style: Any) -> dict[str, Any]:
    """The rendering options checked: a boolean outlier removal, sigma in (0, 1], a box
    threshold in (0, 1] or None (the method's default), and the pictures' ``Style`` (``style``).

    Raises:
        OptionError: naming the option and its range.
    """
    return {
        "outlier_removal": validate.boolean("outlier_removal", outlier_removal),
        "sigma": validate.number("sigma", sigma, 0.0, 1.0, "--sigma", what="a blur, a fraction of the short side,"),
        "box_threshold": None
        if box_threshold is None
        else validate.number(
            "box_threshold", box_threshold, 0.0, 1.0, "--box-threshold", what="the box threshold, a fraction of the max,"
        ),
        "style": Style.checked(**style),
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


def versions() -> dict[str, str]:
    """The versions of fixtrace and of the libraries it runs on."""
    import numba
    import onnxruntime

    from fixtrace import __version__

    return {
        "fixtrace": __version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "numba": numba.__version__,
        "numpy": np.__version__,
    }
