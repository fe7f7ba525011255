"""Explain every image of a localization dataset with each method and score the maps."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fixtrace import validate
from fixtrace.api import DEVICES, MAX_THREADS, Explainer, check_render_options
from fixtrace.errors import FixtraceError, OptionError
from fixtrace.evaluate.dataset import BOXES_FILE, DatasetError, Item
from fixtrace.evaluate.methods import MethodSpec
from fixtrace.explanation import Explanation
from fixtrace.images.load import load_image
from fixtrace.images.preprocess import Preset
from fixtrace.images.preset_choice import PresetArg
from fixtrace.metrics.classifier import Classifier
from fixtrace.metrics.localization import box_found, centre_gaussian, energy_in_box, pointing_hit
from fixtrace.metrics.perturbation import perturbation_curves
from fixtrace.model.layer_graph import LayerGraph
from fixtrace.model.load import ModelSource, load_model
from fixtrace.render.box import DEFAULT_BOX_THRESHOLD, box_from_heatmap, method_box_threshold
from fixtrace.render.heatmap import DEFAULT_SIGMA
from fixtrace.render.resample import bilinear, pixel_centres

#: Which class the maps explain.
EXPLAINED = ("predicted", "label")


def check_explained(explain: str) -> None:
    """Raise FixtraceError unless ``explain`` is one of EXPLAINED."""
    if explain not in EXPLAINED:
        raise FixtraceError(f"maps explain the {' or the '.join(EXPLAINED)} class, not {explain!r}")


@dataclass
class MapResult:
    """One method's map of one image.

    Attributes:
        item: the dataset item.
        photo: the image, uint8 (H, W, 3).
        predicted: the model's top-1 class.
        heatmap: (H, W) map on the image.
        explanation: the full Explanation (None for the baseline).
        seconds: wall time spent making the map (per image of its batch).
    """

    item: Item
    photo: np.ndarray
    predicted: int
    heatmap: np.ndarray
    explanation: Explanation | None
    seconds: float


@dataclass
class ItemScores:
    """The metrics of one map (perturbation AUCs are nan where they were not computed)."""

    predicted: int
    class_right: bool
    localized: bool
    box_found: bool
    pointing: bool
    energy: float
    deletion_auc: float = math.nan
    insertion_auc: float = math.nan


@dataclass
class MethodScores:
    """One row of the table: a method's metrics over the dataset.

    Attributes:
        label: the method spec.
        images: images scored.
        failed: images that could not be explained (their errors are in ``errors``).
        class_error: top-1 classification error, in %.
        loc_error: top-1 localization error (wrong class, or box IoU < threshold), in %.
        gt_known_error: localization error ignoring the class, in %.
        pointing: pointing-game accuracy, in %.
        energy: mean share of the map's mass inside the box, in %.
        deletion_auc, insertion_auc: means over the images they were computed on.
        perturbed: images the AUCs were computed on.
        ms_per_image: mean time to make one map.
        errors: one line per image that failed.
        unavailable: why the method cannot run on this model at all ("" when it can).
    """

    label: str
    images: int = 0
    failed: int = 0
    class_error: float = math.nan
    loc_error: float = math.nan
    gt_known_error: float = math.nan
    pointing: float = math.nan
    energy: float = math.nan
    deletion_auc: float = math.nan
    insertion_auc: float = math.nan
    perturbed: int = 0
    ms_per_image: float = math.nan
    errors: list[str] = field(default_factory=list)
    unavailable: str = ""

    @classmethod
    def summarise(cls, label: str, scores: list[ItemScores], seconds: float, errors: list[str]) -> MethodScores:
        row = cls(label, images=len(scores), failed=len(errors), errors=errors)
        if scores:
            row.class_error = 100.0 * (1 - float(np.mean([s.class_right for s in scores])))
            row.loc_error = 100.0 * (1 - float(np.mean([s.localized for s in scores])))
            row.gt_known_error = 100.0 * (1 - float(np.mean([s.box_found for s in scores])))
            row.pointing = 100.0 * float(np.mean([s.pointing for s in scores]))
            row.energy = 100.0 * float(np.mean([s.energy for s in scores]))
            row.ms_per_image = 1e3 * seconds / len(scores)
            perturbed = [s for s in scores if not math.isnan(s.deletion_auc)]
            row.perturbed = len(perturbed)
            if perturbed:
                row.deletion_auc = float(np.mean([s.deletion_auc for s in perturbed]))
                row.insertion_auc = float(np.mean([s.insertion_auc for s in perturbed]))
        return row


def score_map(
    result: MapResult, box_threshold: float = DEFAULT_BOX_THRESHOLD, iou_threshold: float = 0.5, tolerance: float = 0.0
) -> ItemScores:
    """Localization metrics of one map (box cut at ``box_threshold`` x its max)."""
    box = box_from_heatmap(result.heatmap, box_threshold)
    found = box_found(box, result.item.boxes, iou_threshold)
    right = result.predicted == result.item.label
    return ItemScores(
        result.predicted,
        right,
        found and right,
        found,
        pointing_hit(result.heatmap, result.item.boxes, tolerance),
        energy_in_box(result.heatmap, result.item.boxes),
    )


def make_maps(
    model: ModelSource,
    items: Sequence[Item],
    spec: MethodSpec,
    *,
    preset: PresetArg = None,
    sigma: float = DEFAULT_SIGMA,
    batch_size: int = 16,
    device: str = "cpu",
    threads: int = 0,
    classifier: Classifier | None = None,
    explain: str = "predicted",
) -> Iterator[MapResult | FixtraceError]:
    """One map per item, in order (an item that fails yields its error; the others go on).

    Args:
        model: the ONNX model.
        items: the dataset.
        spec: the method.
        preset: the preprocessing asked for (see ``choose_preset``; None: the model's metadata
            preset, else imagenet).
        sigma: fixations' blur, as a fraction of the short side (unless the spec sets it).
        batch_size: images per forward and backward walk.
        device: where the backward rules run.
        threads: onnxruntime intra-op threads.
        classifier: the baseline's classifier (built when missing).
        explain: the class each map explains: ``"predicted"`` (the model's top-1, as in ILSVRC
            localization) or ``"label"`` (the item's labelled class, as in the pointing game).

    Raises:
        FixtraceError: the method cannot run on this model (e.g. CAM without a GAP + FC head),
            or ``explain`` is neither ``"predicted"`` nor ``"label"``.
    """
    check_explained(explain)
    paths = [item.image for item in items]
    if spec.is_baseline:
        classifier = classifier or _classifier(model, preset, threads)
        for item in items:
            t0 = time.perf_counter()
            try:
                photo = load_image(item.image)
                predicted = int(np.argmax(classifier.probabilities(photo[None])[0]))
            except FixtraceError as exc:
                yield exc
                continue
            heat = centre_gaussian((photo.shape[1], photo.shape[0]))
            yield MapResult(item, photo, predicted, heat, None, time.perf_counter() - t0)
        return
    explainer = Explainer(
        model,
        preset=preset,
        conv_location=spec.conv_location,
        method=spec.method_spec,
        ge=spec.ge,
        device=device,
        threads=threads,
    )
    render: dict[str, Any] = {"outlier_removal": spec.outlier_removal, "sigma": spec.sigma or sigma}
    list(explainer.explain_many(paths[:1], **render))  # untimed: loads the numba kernels, so ms/image is steady-state
    for first in range(0, len(items), batch_size):
        t0 = time.perf_counter()
        chunk = list(range(first, min(first + batch_size, len(items))))
        groups = (
            [(None, chunk)]
            if explain == "predicted"
            else [(label, [k for k in chunk if items[k].label == label]) for label in sorted({items[k].label for k in chunk})]
        )
        done: dict[int, Explanation | FixtraceError] = {}
        for target, members in groups:
            try:
                for batch_item in explainer.explain_many([paths[k] for k in members], target, batch_size=batch_size, **render):
                    done[members[batch_item.index]] = batch_item.error or (batch_item.explanations or [])[0]
            except FixtraceError as exc:  # e.g. a label outside the model's classes
                done |= {k: exc for k in members}
        seconds = (time.perf_counter() - t0) / len(chunk)
        for k in chunk:
            result = done[k]
            if isinstance(result, FixtraceError):
                yield result
            else:
                yield MapResult(items[k], result.image, result.top_classes[0].index, result.heatmap, result, seconds)


def _classifier(model: ModelSource, preset: PresetArg, threads: int) -> Classifier:
    return Classifier(LayerGraph.from_model(load_model(model)), None, preset, threads=threads)


def _check_labels(items: Sequence[Item], classes: int) -> None:
    """Every label must be a class of the model's output."""
    for item in items:
        if item.label >= classes:
            raise DatasetError(
                f"{BOXES_FILE}: label {item.label} of {item.image.name} is out of range: the model has "
                f"{classes} classes (0..{classes - 1})"
            )


def _on_pixels(result: MapResult) -> np.ndarray:
    """The map at the decoded photo's size (smaller than the map for photos decoded reduced)."""
    h, w = result.photo.shape[:2]
    if result.heatmap.shape == (h, w):
        return result.heatmap
    return bilinear(result.heatmap, pixel_centres(h, result.heatmap.shape[0]), pixel_centres(w, result.heatmap.shape[1]))


def _boxes_problem(result: MapResult) -> str:
    """Why the item's boxes do not fit its image ("" when they do)."""
    height, width = result.heatmap.shape
    for box in result.item.boxes:
        if box[2] > width or box[3] > height:
            return f"{result.item.image.name}: box {box} lies outside the image ({width}x{height}): boxes for another size?"
    return ""


@dataclass
class Evaluation:
    """The method x metric table of one model on one dataset."""

    model: str
    dataset: str
    images: int
    rows: list[MethodScores]
    settings: dict
    classification_error: float = math.nan


def evaluate(
    model: ModelSource,
    items: Sequence[Item],
    specs: Sequence[MethodSpec],
    *,
    preset: PresetArg = None,
    box_threshold: float | None = None,
    sigma: float = DEFAULT_SIGMA,
    iou_threshold: float = 0.5,
    tolerance: float = 0.0,
    perturbation: int = 50,
    steps: int = 32,
    batch_size: int = 16,
    device: str = "cpu",
    threads: int = 0,
    on_step: Callable[[str], None] | None = None,
    on_preset: Callable[[Preset, str], None] | None = None,
    name: str = "",
    dataset: str = "",
    explain: str = "predicted",
) -> Evaluation:
    """Score every method on every item.

    Args:
        model: the ONNX model.
        items: the dataset (``read_dataset``).
        specs: the methods (``parse_method``).
        preset: the preprocessing asked for (see ``choose_preset``; None: the model's metadata
            preset, else imagenet).
        box_threshold: fraction of the map's max that cuts out the box (unless a spec sets it;
            default: each method's own, ``fixtrace.render.box.BOX_THRESHOLDS``).
        sigma: fixations' blur, fraction of the short side (unless a spec sets it).
        iou_threshold: IoU a box needs to count as found.
        tolerance: pointing-game tolerance in pixels.
        perturbation: deletion/insertion curves on the first this many images (0: none).
        steps: points per perturbation curve.
        batch_size, device, threads: as in ``Explainer``.
        on_step: called with a label after each map (a progress bar).
        on_preset: called with the preset and its source (``preset_choice.SOURCES``) once the
            model is read, before any image.
        name, dataset: what the table says it measured.
        explain: the class the maps explain, ``"predicted"`` or ``"label"`` (see ``make_maps``).

    Returns:
        The table; a method that cannot run on the model gets a row with its error and no scores.

    Raises:
        FixtraceError: bad render options; the model cannot be read.
    """
    check_render_options(sigma, box_threshold)
    check_explained(explain)
    if isinstance(items, (str, bytes)) or not all(isinstance(i, Item) for i in items):
        raise OptionError("items must be a list of fixtrace.evaluate.Item (see read_dataset)")
    if isinstance(specs, (str, bytes)) or not all(isinstance(s, MethodSpec) for s in specs):
        raise OptionError("specs must be a list of MethodSpec (see parse_method), e.g. [parse_method('gradcam')]")
    iou_threshold = validate.number("iou_threshold", iou_threshold, 0.0, 1.0, "--iou")
    tolerance = validate.number("tolerance", tolerance, 0.0, math.inf, "--tolerance", low_open=False, what="a distance in pixels")
    perturbation = validate.integer("perturbation", perturbation, 0, flag="--perturbation")
    steps = validate.integer("steps", steps, 1, flag="--steps")
    batch_size = validate.integer("batch_size", batch_size, 1, flag="--batch-size")
    threads = validate.integer("threads", threads, 0, MAX_THREADS, "--threads")
    device = validate.choice("device", device, DEVICES, "--device")
    classifier = _classifier(model, preset, threads)
    if on_preset:
        on_preset(classifier.preset, classifier.preset_source)
    _check_labels(items, classifier.output.classes)
    rows: list[MethodScores] = []
    for spec in specs:
        scores: list[ItemScores] = []
        errors: list[str] = []
        seconds, seen = 0.0, 0
        try:
            for result in make_maps(
                model,
                items,
                spec,
                preset=classifier.preset,
                sigma=sigma,
                batch_size=batch_size,
                device=device,
                threads=threads,
                classifier=classifier,
                explain=explain,
            ):
                problem = "" if isinstance(result, FixtraceError) else _boxes_problem(result)
                if isinstance(result, FixtraceError):
                    errors.append(f"{items[seen].image.name}: {result}")
                elif problem:
                    errors.append(problem)
                else:
                    seconds += result.seconds
                    threshold = spec.box_threshold or box_threshold or method_box_threshold(spec.method, spec.ge)
                    scores.append(score_map(result, threshold, iou_threshold, tolerance))
                    if len(scores) <= perturbation:
                        followed = result.item.label if explain == "label" else result.predicted
                        curves = perturbation_curves(classifier.probabilities, result.photo, _on_pixels(result), followed, steps)
                        scores[-1].deletion_auc, scores[-1].insertion_auc = curves.deletion_auc, curves.insertion_auc
                if on_step:
                    on_step(f"{spec.label} {items[seen].image.name}")
                seen += 1
        except FixtraceError as exc:  # the method cannot run on this model at all
            unavailable = str(exc)
            for _ in range(len(items) - seen):
                if on_step:
                    on_step(f"{spec.label} cannot run")
        else:
            unavailable = ""
        rows.append(MethodScores.summarise(spec.label, scores, seconds, errors))
        rows[-1].unavailable = unavailable
    settings = {
        "explained_class": explain,
        "preset": classifier.preset.name,
        "preprocessing": classifier.preset.to_dict(),
        "preprocessing_source": classifier.preset_source,
        "box_threshold": box_threshold,
        "sigma": sigma,
        "iou_threshold": iou_threshold,
        "pointing_tolerance_px": tolerance,
        "perturbation_images": perturbation,
        "perturbation_steps": steps,
    }
    scored = next((r for r in rows if r.images), None)
    return Evaluation(name, dataset, len(items), rows, settings, scored.class_error if scored else math.nan)
