"""The evaluation table as Markdown, CSV and JSON."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict
from pathlib import Path

from fixtrace.evaluate.run import Evaluation

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
    return "n/a" if value is None or isinstance(value, float) and math.isnan(value) else fmt.format(value)


def to_markdown(evaluation: Evaluation) -> str:
    """A Markdown table, one row per method; methods that could not run say why below it."""
    header = ["method", *(c[0] for c in COLUMNS), "images"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in evaluation.rows:
        cells = [row.label, *(_cell(getattr(row, attr), fmt) for _, attr, fmt, _ in COLUMNS)]
        cells.append(f"{row.images}" + (f" ({row.failed} failed)" if row.failed else ""))
        lines.append("| " + " | ".join(cells) + " |")
    notes = [f"- {row.label}: not available: {row.unavailable}" for row in evaluation.rows if row.unavailable]
    notes += [f"- {row.label}: {row.errors[0]}" + (f" (and {len(row.errors) - 1} more failed)" if len(row.errors) > 1 else "")
              for row in evaluation.rows if row.errors]
    perturbed = max((r.perturbed for r in evaluation.rows), default=0)
    summary = (f"{evaluation.images} images; top-1 classification error {_cell(evaluation.classification_error, '{:.1f}')} %; "
               f"maps explain the {'labelled' if evaluation.settings.get('explained_class') == 'label' else 'predicted'} class; "
               f"deletion/insertion on the first {perturbed} images")
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
    """Write evaluation.md, evaluation.csv and evaluation.json into ``folder`` (created if missing)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / "evaluation.md", folder / "evaluation.csv", folder / "evaluation.json"]
    paths[0].write_text(to_markdown(evaluation), encoding="utf-8")
    paths[1].write_text(to_csv(evaluation), encoding="utf-8")
    record = asdict(evaluation)
    paths[2].write_text(json.dumps(record, indent=1, default=str).replace("NaN", "null"), encoding="utf-8")
    return paths
