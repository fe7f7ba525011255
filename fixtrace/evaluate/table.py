"""The evaluation table as Markdown, CSV and JSON."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import asdict
from pathlib import Path

from fixtrace.evaluate.run import Evaluation
from fixtrace.files import output_error, write_json_atomic, write_text_atomic

#: (header, MethodScores attribute, format, better): the table's columns.
COLUMNS = (
    ("top-1 loc err %", "loc_error", "{:.1f}", "lower"),
    ("GT-known loc err %", "gt_known_error", "{:.1f}", "lower"),
    ("pointing %", "pointing", "{:.1f}", "higher"),
    ("energy in box %", "energy", "{:.1f}", "higher"),
    ("deletion AUC", "deletion_auc", "{:.3f}", "lower"),
    ("insertion AUC", "insertion_auc", "{:.3f}", "higher"),
    ("ms / image", "ms_per_image", "{:.1f}", "lower"),
)


def _cell(value: float, fmt: str) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else fmt.format(value)


def to_markdown(evaluation: Evaluation) -> str:
    """A Markdown table, one row per method; methods that could not run say why below it."""
    header = ["method", *(c[0] for c in COLUMNS), "images"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in evaluation.rows:
        cells = [row.label, *(_cell(getattr(row, attr), fmt) for _, attr, fmt, _ in COLUMNS)]
        cells.append(f"{row.images}" + (f" ({row.failed} failed)" if row.failed else ""))
        lines.append("| " + " | ".join(cells) + " |")
    notes = [f"- {row.label}: not available: {row.unavailable}" for row in evaluation.rows if row.unavailable]
    notes += [
        f"- {row.label}: {row.errors[0]}" + (f" (and {len(row.errors) - 1} more failed)" if len(row.errors) > 1 else "")
        for row in evaluation.rows
        if row.errors
    ]
    perturbed = max((r.perturbed for r in evaluation.rows), default=0)
    summary = (
        f"{evaluation.images} images; top-1 classification error {_cell(evaluation.classification_error, '{:.1f}')} %; "
        f"maps explain the {'labelled' if evaluation.settings.get('explained_class') == 'label' else 'predicted'} class; "
        f"deletion/insertion on the first {perturbed} images"
    )
    return "\n".join([*lines, "", summary, *notes]) + "\n"


def to_csv(evaluation: Evaluation) -> str:
    """One CSV row per method, with every metric."""
    out = io.StringIO()
    writer = csv.writer(out)
    names = ["label", "images", "failed", "class_error", *(c[1] for c in COLUMNS), "perturbed"]
    writer.writerow(names)
    for row in evaluation.rows:
        writer.writerow([_cell(v, "{:.4f}") if isinstance(v, float) else v for v in (getattr(row, n) for n in names)])
    return out.getvalue()


def save(evaluation: Evaluation, folder: str | Path) -> list[Path]:
    """Write evaluation.md, evaluation.csv and evaluation.json (standard JSON: unmeasured values
    are null) into ``folder`` (created if missing), each atomically.

    Raises:
        OutputError: a file could not be written.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise output_error(exc, folder) from None
    paths = [folder / "evaluation.md", folder / "evaluation.csv", folder / "evaluation.json"]
    write_text_atomic(paths[0], to_markdown(evaluation))
    write_text_atomic(paths[1], to_csv(evaluation))
    write_json_atomic(paths[2], asdict(evaluation), indent=1)
    return paths
