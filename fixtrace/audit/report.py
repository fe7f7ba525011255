"""The audit's report: one static HTML page (``AUDIT/report.html``) made from the ledger
(``results.jsonl``) and the manifest (``manifest.json``).

The page is self-contained (inline CSS, one inline script allowed by its hash, no network) and
opens from disk; the thumbnails are referenced by relative paths under ``items/`` and load lazily.
The ledger is streamed: each gallery keeps at most a bounded number of compact per-image
summaries and counts the rest, so a 10,000-image audit renders in bounded memory.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import heapq
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import jinja2

from fixtrace.audit.ledger import LEDGER_FILE, LatestRecords
from fixtrace.audit.manifest import read_manifest
from fixtrace.audit.toolbox import read_panels
from fixtrace.errors import OutputError
from fixtrace.files import write_text_atomic

#: The files of an audit folder the report reads and writes.
REPORT = "report.html"
#: Thumbnails per gallery section (the rest are counted), per predicted class, and failures listed.
SECTION_LIMIT = 60
CLASS_LIMIT = 12
FAILURE_LIMIT = 200
#: Shown for a value the ledger or manifest does not give.
MISSING = "\N{EN DASH}"

T = TypeVar("T")


def _manifest(audit_dir: Path) -> dict[str, Any]:
    """The manifest as a dict ({} when it is missing or unreadable: the page still renders)."""
    try:
        return read_manifest(audit_dir) or {}
    except OutputError:
        return {}


# -- the compact per-image summary ------------------------------------------------------------------
def _number(value: Any) -> float | None:
    """A finite float, or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _flag(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def item_url(audit_dir: Path, value: Any) -> str | None:
    """The URL of a file the ledger names (relative to the audit folder), percent-encoded; None
    when it is not a plain relative path inside the folder or the file is not there."""
    if not isinstance(value, str) or not value or "\\" in value or "\x00" in value:
        return None
    path = PurePosixPath(value)
    if path.is_absolute() or ".." in path.parts or not (audit_dir / path).is_file():
        return None
    return quote(path.as_posix(), safe="/")


@dataclass(frozen=True)
class Shot:
    """One method's map of one image, as the report shows it (file paths as the ledger gives them:
    only the shown ones are checked and made URLs, by ``item_url``)."""

    method: str
    thumb: str | None
    overlay: str | None
    entropy: float | None
    energy: float | None
    hit: bool | None

    @classmethod
    def of(cls, label: Any, found: Any) -> Shot:
        found = _mapping(found)
        return cls(
            method=str(label),
            thumb=_text(found.get("thumb")),
            overlay=_text(found.get("overlay")),
            entropy=_number(found.get("entropy")),
            energy=_number(found.get("energy_in_boxes")),
            hit=_flag(found.get("pointing_hit")),
        )


@dataclass(frozen=True)
class Item:
    """What the report keeps of one ledger record."""

    id: str
    image: str
    name: str
    ok: bool
    error: str
    prediction: str | None
    probability: float | None
    truth: str | None
    correct: bool | None
    shots: tuple[Shot, ...]
    #: (pair label, Pearson r), lowest first.
    agreement: tuple[tuple[str, float], ...]
    total_ms: float | None
    finished: str | None

    @property
    def lowest_agreement(self) -> float | None:
        return self.agreement[0][1] if self.agreement else None


def summarize(record: Mapping[str, Any]) -> Item:
    """The compact summary of one ledger record; fields of the wrong type count as missing."""
    image = _text(record.get("image")) or str(record["id"])
    prediction = _mapping(record.get("prediction"))
    shots = tuple(Shot.of(label, found) for label, found in _mapping(record.get("methods")).items())
    pairs = ((str(pair), _number(r)) for pair, r in _mapping(record.get("agreement")).items())
    agreement = tuple(sorted(((pair, r) for pair, r in pairs if r is not None), key=lambda p: p[1]))
    status = record.get("status")
    return Item(
        id=str(record["id"]),
        image=image,
        name=PurePosixPath(image.replace("\\", "/")).name or image,
        ok=status == "ok",
        error=_text(record.get("error")) or ("" if status == "ok" else f"status {status!r}"),
        prediction=_text(prediction.get("name")),
        probability=_number(prediction.get("probability")),
        truth=_text(record.get("truth")),
        correct=_flag(record.get("correct")),
        shots=shots,
        agreement=agreement,
        total_ms=_number(_mapping(record.get("timings")).get("total_ms")),
        finished=_text(record.get("finished")),
    )


# -- bounded galleries ------------------------------------------------------------------------------
class Lowest(Generic[T]):
    """The ``limit`` entries of lowest key seen so far (ties: the earliest), and how many were seen."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.seen = 0
        self._heap: list[tuple[float, int, T]] = []  # (-key, -order, entry): the root is the worst kept

    def add(self, key: float, entry: T) -> None:
        self.seen += 1
        kept = (-key, -self.seen, entry)
        if len(self._heap) < self.limit:
            heapq.heappush(self._heap, kept)
        elif kept[:2] > self._heap[0][:2]:
            heapq.heapreplace(self._heap, kept)

    @property
    def entries(self) -> list[T]:
        """The kept entries, lowest key first."""
        return [entry for _, _, entry in sorted(self._heap, key=lambda k: k[:2], reverse=True)]

    @property
    def rest(self) -> int:
        """How many were seen but are not kept."""
        return self.seen - len(self._heap)


@dataclass
class Mean:
    """A running mean of the values given (None values left out)."""

    total: float = 0.0
    count: int = 0

    def add(self, value: float | None) -> None:
        if value is not None:
            self.total, self.count = self.total + value, self.count + 1

    @property
    def value(self) -> float | None:
        return self.total / self.count if self.count else None


@dataclass
class MethodStats:
    """One method over the audit: its maps, mean entropy, pointing hits and energy in the boxes."""

    maps: int = 0
    entropies: Mean = field(default_factory=Mean)
    hits: Mean = field(default_factory=Mean)
    energies: Mean = field(default_factory=Mean)

    def add(self, shot: Shot) -> None:
        self.maps += 1
        self.entropies.add(shot.entropy)
        self.hits.add(None if shot.hit is None else float(shot.hit))
        self.energies.add(shot.energy)

    @property
    def mean_entropy(self) -> float | None:
        return self.entropies.value

    @property
    def pointing(self) -> float | None:
        return self.hits.value

    @property
    def mean_energy(self) -> float | None:
        return self.energies.value


@dataclass
class Collector:
    """Everything the page shows, gathered in one pass over the ledger."""

    section_limit: int = SECTION_LIMIT
    class_limit: int = CLASS_LIMIT
    failure_limit: int = FAILURE_LIMIT
    images: int = 0
    ok: int = 0
    judged: int = 0
    right: int = 0
    milliseconds: Mean = field(default_factory=Mean)
    first: str | None = None
    last: str | None = None
    methods: dict[str, MethodStats] = field(default_factory=dict)
    classes: dict[str, Lowest[Item]] = field(default_factory=dict)
    least_confident: Lowest[Item] = field(init=False)
    wrong: Lowest[Item] = field(init=False)
    outside: Lowest[tuple[Item, Shot]] = field(init=False)
    disagreeing: Lowest[Item] = field(init=False)
    failures: Lowest[Item] = field(init=False)

    def __post_init__(self) -> None:
        self.least_confident = Lowest(self.section_limit)
        self.wrong = Lowest(self.section_limit)
        self.outside = Lowest(self.section_limit)
        self.disagreeing = Lowest(self.section_limit)
        self.failures = Lowest(self.failure_limit)

    def add(self, item: Item) -> None:
        self.images += 1
        if item.finished:
            self.first = min(self.first or item.finished, item.finished)
            self.last = max(self.last or item.finished, item.finished)
        if not item.ok:
            self.failures.add(self.images, item)
            return
        self.ok += 1
        self.milliseconds.add(item.total_ms)
        probability = item.probability if item.probability is not None else 0.0
        name = item.prediction if item.prediction is not None else "(no prediction)"
        self.classes.setdefault(name, Lowest(self.class_limit)).add(-probability, item)
        self.least_confident.add(probability, item)
        if item.correct is not None:
            self.judged += 1
            self.right += item.correct
            if not item.correct:
                self.wrong.add(-probability, item)  # the most confident mistakes first
        for shot in item.shots:
            self.methods.setdefault(shot.method, MethodStats()).add(shot)
            if shot.energy is not None:
                self.outside.add(shot.energy, (item, shot))
        if item.lowest_agreement is not None:
            self.disagreeing.add(item.lowest_agreement, item)


# -- the page ---------------------------------------------------------------------------------------
def _environment(audit_dir: Path) -> jinja2.Environment:
    """The templates, autoescaped, with the filters they use and ``url`` (``item_url`` in this audit)."""
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("fixtrace.audit", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["percent"] = lambda v, digits=1: MISSING if v is None else f"{100 * v:.{digits}f}%"
    environment.filters["fixed"] = lambda v, digits=2: MISSING if v is None else f"{v:.{digits}f}"
    environment.globals["url"] = functools.lru_cache(maxsize=None)(functools.partial(item_url, audit_dir))
    environment.filters["compact"] = lambda v: v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
    return environment


def _script_hash(script: str) -> str:
    """The CSP source that allows exactly this inline script."""
    return "sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")


def _time(text: Any) -> datetime | None:
    """An ISO time (naive ones read as UTC), or None."""
    try:
        moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def time_span(manifest: Mapping[str, Any], collector: Collector) -> dict[str, Any]:
    """When the audit ran: the manifest's runs (start of the first, end of the last, time spent
    running), else the first and last ``finished`` of the ledger."""
    runs = [r for r in manifest.get("runs", []) if isinstance(r, Mapping)] if isinstance(manifest.get("runs"), list) else []
    starts = [_text(r.get("start")) for r in runs]
    ends = [_text(r.get("end")) for r in runs]
    start = next((s for s in starts if s), None) or collector.first
    end = next((e for e in reversed(ends) if e), None) or collector.last
    spans = [(_time(s), _time(e)) for s, e in zip(starts, ends)]
    running = sum(((e - s).total_seconds() for s, e in spans if s and e), 0.0)
    return {"start": start, "end": end, "runs": len(runs), "seconds": running or None}


#: Options the page leaves out: the command itself, where it wrote, and switches of no interest.
_HIDDEN_OPTIONS = {"command", "model", "out", "quiet", "debug", "force"}
#: Items of a list option shown before the rest are counted (a shell-expanded glob can be long).
_LIST_ITEMS = 5


def _model_rows(model: Mapping[str, Any]) -> dict[str, Any]:
    """The model's manifest entry with its inputs and output in one readable line each."""
    rows = dict(model)
    inputs = model.get("inputs")
    if isinstance(inputs, list):
        rows["inputs"] = ", ".join(_input_text(i) for i in inputs if isinstance(i, Mapping)) or MISSING
    output = model.get("output")
    if isinstance(output, Mapping):
        classes = output.get("classes")
        rows["output"] = f"{output.get('name', '?')} ({output.get('kind', '?')}{f', {classes} classes' if classes else ''})"
    return rows


def _input_text(spec: Mapping[str, Any]) -> str:
    shape = spec.get("shape")
    dims = "x".join("?" if d is None else str(d) for d in shape) if isinstance(shape, list) else "?"
    return f"{spec.get('name', '?')} {dims} {spec.get('layout', '')}".strip()


def _preprocessing_rows(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The preset the audit used (``preset``, or ``preprocessing`` in older folders) and where it came from."""
    rows = dict(_mapping(manifest.get("preset")) or _mapping(manifest.get("preprocessing")))
    if _text(manifest.get("preset_source")):
        rows["from"] = manifest["preset_source"]
    return rows


def _option_rows(options: Mapping[str, Any]) -> dict[str, Any]:
    """The options given: unset ones and bookkeeping left out, long lists cut with a count."""
    rows: dict[str, Any] = {}
    for key, value in options.items():
        if key in _HIDDEN_OPTIONS or value is None or value is False:
            continue
        if isinstance(value, list) and len(value) > _LIST_ITEMS:
            value = [*value[:_LIST_ITEMS], f"... and {len(value) - _LIST_ITEMS:,} more"]
        rows[key] = value
    return rows


def _providers(manifest: Mapping[str, Any]) -> list[str]:
    """onnxruntime providers and fixtrace's backend (``device``), or the older top-level list."""
    device = _mapping(manifest.get("device"))
    found = device.get("providers", manifest.get("providers"))
    providers = [str(p) for p in found] if isinstance(found, list) else []
    return providers + ([f"backend {device['backend']}"] if _text(device.get("backend")) else [])


def page_context(audit_dir: Path, title: str | None, collector: Collector, ledger: LatestRecords) -> dict[str, Any]:
    """What the template renders."""
    manifest = _manifest(audit_dir)
    model = _mapping(manifest.get("model"))
    model_name = PurePosixPath(str(model.get("path", "")).replace("\\", "/")).name
    classes = sorted(collector.classes.items(), key=lambda kv: (-kv[1].seen, kv[0]))
    return {
        "title": title or (f"fixtrace audit: {model_name}" if model_name else "fixtrace audit"),
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "c": collector,
        "unreadable": ledger.unreadable,
        "model": _model_rows(model),
        "preprocessing": _preprocessing_rows(manifest),
        "options": _option_rows(_mapping(manifest.get("options"))),
        "versions": _mapping(manifest.get("versions")),
        "providers": _providers(manifest),
        "fixtrace_version": _text(_mapping(manifest.get("versions")).get("fixtrace")) or _text(manifest.get("fixtrace")),
        "span": time_span(manifest, collector),
        "classes": [(f"class-{k}", name, kept) for k, (name, kept) in enumerate(classes)],
        "mean_ms": collector.milliseconds.value,
        "toolbox": read_panels(audit_dir),
    }


def render_report(
    audit_dir: Path,
    *,
    title: str | None = None,
    section_limit: int = SECTION_LIMIT,
    class_limit: int = CLASS_LIMIT,
) -> Path:
    """Write ``AUDIT/report.html`` from the audit folder's ledger and manifest.

    Args:
        audit_dir: the audit folder (``results.jsonl``, ``manifest.json``, ``items/``).
        title: the page's title (default: from the model's file name).
        section_limit: thumbnails per section (least confident, wrong, outside the boxes,
            disagreeing methods); the rest are counted.
        class_limit: thumbnails per predicted class (the most confident), the rest counted.

    Returns:
        The report's path.

    Raises:
        OutputError: the page could not be written.
    """
    audit_dir = Path(audit_dir)
    ledger = LatestRecords(audit_dir / LEDGER_FILE)
    collector = Collector(section_limit=section_limit, class_limit=class_limit)
    for record in ledger:
        collector.add(summarize(record))
    environment = _environment(audit_dir)
    script = environment.get_template("check.js").render()
    html = environment.get_template("report.html.j2").render(
        **page_context(audit_dir, title, collector, ledger), script=script, script_hash=_script_hash(script)
    )
    out = audit_dir / REPORT
    write_text_atomic(out, html)
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m fixtrace.audit.report AUDIT``: (re)write an audit's report."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not os.path.isdir(args[0]):
        print("usage: python -m fixtrace.audit.report AUDIT_FOLDER", file=sys.stderr)
        return 2
    print(render_report(Path(args[0])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
