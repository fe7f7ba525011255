"""What is known about the audited images: ground-truth boxes (``--boxes``, the ``boxes.csv``
format of ``fixtrace evaluate``) and true classes (``--labels-csv``), looked up by path.

``--labels-csv`` is a UTF-8 CSV file with a header row and the columns ``image`` and ``label``:
``image`` a path relative to the CSV's folder, ``label`` a class index or a class name (case-blind).
Without it, the labels of ``--boxes`` are the truth.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

from fixtrace.errors import FixtraceError, OptionError
from fixtrace.evaluate.dataset import read_boxes
from fixtrace.files import check_input_file
from fixtrace.metrics.localization import Box


@dataclass
class Truth:
    """Boxes and true classes by image (real path).

    Attributes:
        boxes: ground-truth boxes per image.
        labels: true class index per image.
    """

    boxes: dict[str, tuple[Box, ...]] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)

    def of(self, path: Path) -> tuple[tuple[Box, ...] | None, int | None]:
        """The image's boxes (None without --boxes; empty when it has none) and true class."""
        key = _key(path) if self.boxes or self.labels else ""
        boxes = self.boxes.get(key, ()) if self.boxes else None
        return boxes, self.labels.get(key)


def read_truth(boxes: str | None, labels_csv: str | None, names: list[str]) -> Truth:
    """Read ``--boxes`` and ``--labels-csv`` (either may be None).

    Raises:
        FixtraceError: a file that is missing or malformed, a label that is no class of the model.
    """
    truth = Truth()
    if boxes is not None:
        for item in read_boxes(boxes):
            truth.boxes[_key(item.image)] = item.boxes
            truth.labels[_key(item.image)] = _check_index(item.label, names, boxes)
    if labels_csv is not None:
        truth.labels = dict(_labels(Path(labels_csv), names))
    return truth


def _labels(path: Path, names: list[str]) -> list[tuple[str, int]]:
    check_input_file(path, "labels CSV", FixtraceError)
    by_name = {name.casefold(): k for k, name in reversed(list(enumerate(names)))}
    rows = []
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            if not {"image", "label"} <= set(reader.fieldnames or []):
                raise OptionError(f"--labels-csv {path}: the header must name the columns image and label")
            for row in reader:
                where = f"--labels-csv {path}:{reader.line_num}"
                image, label = (row["image"] or "").strip(), (row["label"] or "").strip()
                if not image:
                    raise OptionError(f"{where}: no image path")
                if label.lstrip("-").isdigit():
                    index = _check_index(int(label), names, where)
                elif label.casefold() in by_name:
                    index = by_name[label.casefold()]
                else:
                    raise OptionError(f"{where}: {label!r} is neither a class index nor a class name of the model")
                rows.append((_key(path.parent / image), index))
    except UnicodeDecodeError as exc:
        raise OptionError(f"--labels-csv {path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except csv.Error as exc:
        raise OptionError(f"--labels-csv {path} is not a readable CSV file: {exc}") from None
    return rows


def _check_index(index: int, names: list[str], where: str) -> int:
    if not 0 <= index < len(names):
        raise OptionError(f"{where}: class {index} is not a class of the model (0..{len(names) - 1})")
    return index


def _key(path: Path) -> str:
    """An image's key: its real path (links and ``..`` resolved)."""
    return os.path.realpath(path)
