"""The local audit engine: photos decoded ahead on a few threads, explained in batches by one
``Explainer`` (one forward per batch for every method), each finished image written to disk on a
writer thread (pictures, then its ledger line) while the next batch runs; memory holds at most
the photos read ahead, one batch being explained and one batch being written."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fixtrace.api import BatchItem, Explainer
from fixtrace.audit.inputs import AuditInput
from fixtrace.audit.ledger import ERROR, OK, Ledger
from fixtrace.audit.manifest import now
from fixtrace.audit.measures import agreement, map_measures
from fixtrace.audit.pictures import write_pictures
from fixtrace.audit.truth import Truth
from fixtrace.errors import OutputError
from fixtrace.explanation import ClassScore, Explanation
from fixtrace.images.load import Photo, load_photo
from fixtrace.render.heatmap import DEFAULT_SIGMA
from fixtrace.runtime.in_order import InOrder
from fixtrace.runtime.prefetch import Loaded, prefetch

#: Handed to ``explain_many`` in place of a photo that could not be read (it fails at once,
#: without reading the file again); the reading error is what the ledger records.
_UNREADABLE = np.empty((0, 0, 3), dtype=np.uint8)


@dataclass(frozen=True)
class AuditSettings:
    """How the images are run.

    Attributes:
        batch_size: photos per forward.
        workers: threads decoding photos ahead (0: decode in the main thread).
        sigma: fixations' heat-map blur.
        box_threshold: the box cut (None: each method's).
        outlier_removal: drop isolated fixation points.
    """

    batch_size: int = 8
    workers: int = 2
    sigma: float = DEFAULT_SIGMA
    box_threshold: float | None = None
    outlier_removal: bool = True


def run_audit(
    explainer: Explainer,
    inputs: Iterable[AuditInput],
    audit: Path,
    ledger: Ledger,
    truth: Truth,
    names: list[str],
    settings: AuditSettings,
    on_record: Callable[[dict[str, Any]], None] = lambda record: None,
) -> None:
    """Audit every input the ledger does not hold as done, appending one record per image.

    Args:
        explainer: the model with the methods to run.
        inputs: the images (streamed).
        audit: the audit folder (pictures go to ``items/<id>/``).
        ledger: the open ledger; ids it holds as ``ok`` are skipped.
        truth: boxes and true classes.
        names: the model's class names.
        settings: batch size, read-ahead threads and rendering options.
        on_record: called with each record once it is in the ledger.

    Raises:
        OutputError: the disk is full (``fatal``): what was finished is kept.
    """
    todo = (item for item in inputs if not ledger.done(item.id))
    loaded = prefetch(todo, _read, settings.workers, ahead=2 * settings.batch_size)
    explained = explain_loaded(explainer, loaded, settings)

    def write(explained_item: tuple[BatchItem, Loaded[AuditInput, Photo]]) -> dict[str, Any]:
        return record_of(*explained_item, audit, truth, names)

    def finish(explained_item: tuple[BatchItem, Loaded[AuditInput, Photo]], writing: Future[dict[str, Any]]) -> None:
        record = writing.result()
        ledger.append(record)
        on_record(record)

    # One writer thread draws and encodes each image's pictures while the next batch runs; at
    # most a batch of images waits for it. Lines stay in order: pictures first, then the line.
    try:
        with InOrder(write, finish, workers=1, waiting=settings.batch_size) as writer:
            for explained_item in explained:
                writer.submit(explained_item)
    finally:
        explained.close()
        loaded.close()


def explain_loaded(
    explainer: Explainer, loaded: Iterable[Loaded[AuditInput, Photo]], settings: AuditSettings
) -> Generator[tuple[BatchItem, Loaded[AuditInput, Photo]], None, None]:
    """Explain the loaded photos in batches (every method from one forward), in order: each
    result with its entry (an unreadable photo fails at once, its reading error kept)."""
    waiting: deque[Loaded[AuditInput, Photo]] = deque()

    def photos() -> Iterator[Photo | np.ndarray]:
        for entry in loaded:
            waiting.append(entry)
            yield entry.value if entry.value is not None else _UNREADABLE

    items = explainer.explain_many(
        photos(),
        batch_size=settings.batch_size,
        outlier_removal=settings.outlier_removal,
        sigma=settings.sigma,
        box_threshold=settings.box_threshold,
    )
    for item in items:
        yield item, waiting.popleft()


def read_input(item: AuditInput) -> Loaded[AuditInput, Photo]:
    """Read one input's photo in this thread (a reading error is kept in the entry)."""
    return next(prefetch([item], _read, 0, ahead=1))


def _read(item: AuditInput) -> Photo:
    return load_photo(item.path)


def record_of(item: BatchItem, entry: Loaded[AuditInput, Photo], audit: Path, truth: Truth, names: list[str]) -> dict[str, Any]:
    """The ledger record of one image (its pictures written first).

    Raises:
        OutputError: fatal (a full disk); other write failures are the image's error.
    """
    boxes, label = truth.of(entry.item.path)
    record: dict[str, Any] = {
        "id": entry.item.id,
        "image": str(entry.item.path),
        "status": ERROR,
        "error": None,
        "size": None,
        "prediction": None,
        "top5": [],
        "truth": names[label] if label is not None else None,
        "correct": None,
        "methods": {},
        "agreement": {},
        "timings": {"total_ms": entry.ms},
        "finished": None,
    }
    error = entry.error or item.error
    if error is None:
        try:
            record |= _explained(item.by_method, entry, audit, boxes, label)
        except OutputError as exc:
            if exc.fatal:
                raise
            error = exc
    if error is not None:
        record["error"] = str(error)
    record["finished"] = now()
    return record


def _explained(
    by_method: dict[str, list[Explanation]], entry: Loaded[AuditInput, Photo], audit: Path, boxes: Any, label: int | None
) -> dict[str, Any]:
    """The fields of a well explained image."""
    firsts = {name: found[0] for name, found in by_method.items()}
    first = next(iter(firsts.values()))
    pictures = write_pictures(audit, entry.item.id, firsts)
    timings: dict[str, float] = {}
    methods: dict[str, Any] = {}
    for name, e in firsts.items():
        t0 = time.perf_counter()
        measures = map_measures(e, boxes)
        spent = e.info.get("timings_ms", {})
        n = max(int(e.info.get("batch_size", 1)), 1)
        written = pictures[name]
        timings[name] = (
            spent.get("method_ms", 0.0) / n
            + spent.get("render_ms", 0.0)
            + float(written["write_ms"])  # type: ignore[arg-type]
            + (time.perf_counter() - t0) * 1e3
        )
        methods[name] = {**measures, "overlay": written["overlay"], "thumb": written["thumb"]}
    spent = first.info.get("timings_ms", {})
    forward = spent.get("forward_ms", 0.0) / max(int(first.info.get("batch_size", 1)), 1)
    prediction = first.top_classes[0]
    return {
        "status": OK,
        "size": list(first.photo_size or (int(first.image.shape[1]), int(first.image.shape[0]))),
        "prediction": _score(prediction),
        "top5": [_score(c) for c in first.top_classes[:5]],
        "correct": None if label is None else prediction.index == label,
        "methods": methods,
        "agreement": agreement(firsts) if len(firsts) > 1 else {},
        "timings": {"total_ms": entry.ms + forward + sum(timings.values()), "read_ms": entry.ms, "forward_ms": forward}
        | {name: ms for name, ms in timings.items()},
    }


def _score(c: ClassScore) -> dict[str, Any]:
    return {"index": c.index, "name": c.name, "probability": c.probability}
