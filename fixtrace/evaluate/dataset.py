"""A localization dataset on disk: a folder of images and a ``boxes.csv`` that says what is where.

``boxes.csv`` (UTF-8, comma-separated, header row required)::

    image,label,x0,y0,x1,y1
    00000.png,9,41,12,86,60
    00001.png,3,10,55,48,101
    00001.png,3,60,20,95,70

- ``image``: a path relative to the folder.
- ``label``: the class index in the model's output.
- ``x0,y0,x1,y1``: the object's box in the image's own pixels, ``x1`` and ``y1`` exclusive.
- An image with several objects of its class has one row per box (same label); the box found
  from the map must match one of them.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fixtrace.errors import FixtraceError
from fixtrace.files import check_input_file, inside

if TYPE_CHECKING:  # the metrics import scipy
    from fixtrace.metrics.localization import Box

BOXES_FILE = "boxes.csv"
COLUMNS = ("image", "label", "x0", "y0", "x1", "y1")


class DatasetError(FixtraceError):
    """The dataset folder or its boxes file is missing or malformed."""


@dataclass(frozen=True)
class Item:
    """One image of the dataset.

    Attributes:
        image: its path.
        label: its class index.
        boxes: its ground-truth boxes.
    """

    image: Path
    label: int
    boxes: tuple[Box, ...]


def read_dataset(folder: str | Path) -> list[Item]:
    """Read ``folder/boxes.csv``; images keep the order of their first row.

    Raises:
        DatasetError: no folder or boxes file (or one that is not a regular file), a file that is
            not UTF-8 CSV, a missing column, a row that is not ``name,int,int,int,int,int``, a
            negative label, an empty box, two labels for one image, no rows, or an image path
            that is absolute or leads outside the folder.
    """
    if not isinstance(folder, (str, os.PathLike)):
        raise DatasetError(f"a dataset is the path of a folder, not {type(folder).__name__}")
    folder = Path(folder)
    path = folder / BOXES_FILE
    if not folder.is_dir():
        raise DatasetError(f"{folder} is not a folder (expected images plus {BOXES_FILE})")
    if not path.exists() and not path.is_symlink():
        raise DatasetError(f"{path} is missing; columns: {','.join(COLUMNS)} (see `fixtrace evaluate --help`)")
    return read_boxes(path, folder)


def read_boxes(path: str | Path, folder: str | Path | None = None) -> list[Item]:
    """Read a boxes file in the ``boxes.csv`` format; images keep the order of their first row.

    Args:
        path: the CSV file (any name).
        folder: the folder its image paths are relative to (default: the file's own).

    Raises:
        DatasetError: as ``read_dataset``, for the file.
    """
    path = Path(path)
    folder = path.parent if folder is None else Path(folder)
    check_input_file(path, "boxes file", DatasetError)
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            labels, boxes = _rows(csv.DictReader(f), path, folder)
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8 CSV") from None
    except csv.Error as exc:
        raise DatasetError(f"{path} is not a readable CSV file: {exc}") from None
    if not labels:
        raise DatasetError(f"{path} has no rows")
    return [Item(folder / name, labels[name], tuple(boxes[name])) for name in labels]


def _rows(reader: csv.DictReader, path: Path, folder: Path) -> tuple[dict[str, int], dict[str, list[Box]]]:
    """Labels and boxes per image name, row by row."""
    labels: dict[str, int] = {}
    boxes: dict[str, list[Box]] = {}
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise DatasetError(f"{path}: the header lacks {', '.join(missing)}; columns: {','.join(COLUMNS)}")
    for row in reader:
        where = f"{path}:{reader.line_num}"
        try:
            label, *box = (int(row[c]) for c in COLUMNS[1:])
        except (TypeError, ValueError):
            raise DatasetError(f"{where}: label and box must be whole numbers, got {[row[c] for c in COLUMNS[1:]]}") from None
        name = (row["image"] or "").strip()
        if not name:
            raise DatasetError(f"{where}: no image name")
        inside(folder, name, f"{where}: image {name!r}", DatasetError, folder_word="the dataset folder")
        if label < 0:
            raise DatasetError(f"{where}: label {label} is negative; labels are class indices 0, 1, ...")
        if box[2] <= box[0] or box[3] <= box[1] or min(box) < 0:
            raise DatasetError(f"{where}: the box {tuple(box)} is empty or negative (x1 > x0 >= 0 and y1 > y0 >= 0)")
        if labels.setdefault(name, label) != label:
            raise DatasetError(f"{where}: {name} has label {label} here but {labels[name]} above")
        boxes.setdefault(name, []).append((box[0], box[1], box[2], box[3]))
    return labels, boxes
