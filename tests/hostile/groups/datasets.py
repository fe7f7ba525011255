"""Bad ``fixtrace evaluate`` datasets: malformed boxes files and image paths that leave the folder."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from hostile.case import BAD_INPUT, ITEM_FAILED, Case, fails, ok
from hostile.corpus import SAMPLES, evaluate_args

HEADER = "image,label,x0,y0,x1,y1"
GOOD = ["00000.png,1,83,11,95,45", "00001.png,2,24,68,47,103", "00002.png,1,47,10,77,49"]


def _rows(*rows: str) -> str:
    return "\n".join([HEADER, *rows]) + "\n"


def _datasets() -> dict[str, str | bytes | None]:
    """name -> the boxes.csv text (None: no boxes file)."""
    return {
        "good": _rows(*GOOD),
        "no_boxes_file": None,
        "empty_file": "",
        "header_only": HEADER + "\n",
        "missing_column": "image,label,x0,y0,x1\n00000.png,1,83,11,95\n",
        "extra_columns": "image,label,x0,y0,x1,y1,source\n00000.png,1,83,11,95,45,mturk\n",
        "bom_and_crlf": "\ufeff" + _rows(*GOOD).replace("\n", "\r\n"),
        "semicolons": _rows(*GOOD).replace(",", ";"),
        "binary": np.random.default_rng(9).bytes(4000),
        "nul_bytes": _rows(*GOOD).replace("00001", "00\x0001"),
        "latin1": (_rows(*GOOD) + "caf\xe9.png,1,1,1,5,5\n").encode("latin-1"),
        "negative_label": _rows("00000.png,-1,83,11,95,45"),
        "label_out_of_range": _rows("00000.png,10,83,11,95,45"),
        "label_enormous": _rows("00000.png,99999999999999999999,83,11,95,45"),
        "label_float": _rows("00000.png,3.0,83,11,95,45"),
        "label_text": _rows("00000.png,shirt,83,11,95,45"),
        "negative_box": _rows("00000.png,1,-5,11,95,45"),
        "empty_box": _rows("00000.png,1,83,11,83,45"),
        "box_beyond_image": _rows("00000.png,1,83,11,5000,45", *GOOD[1:]),
        "too_few_fields": _rows("00000.png,1,83"),
        "too_many_fields": _rows("00000.png,1,83,11,95,45,7,8", *GOOD[1:]),
        "conflicting_labels": _rows("00000.png,1,83,11,95,45", "00000.png,2,1,1,5,5"),
        "duplicated_rows": _rows(GOOD[0], GOOD[0], *GOOD[1:]),
        "quoted_comma_name": _rows('"a,b.png",1,83,11,95,45'),
        "spaces_around": _rows(" 00000.png ,1,83,11,95,45"),
        "no_name": _rows(",1,83,11,95,45"),
        "huge_field": _rows("x" * 300_000 + ".png,1,1,1,5,5"),
        "dotdot_image": _rows("../../../secrets/photo.png,1,1,1,5,5"),
        "dotdot_inside": _rows("sub/../00000.png,1,83,11,95,45"),
        "absolute_image": _rows("/etc/passwd,1,1,1,5,5"),
        "symlink_outside": _rows("link_out.png,1,1,1,5,5"),
        "symlink_inside": _rows("link_in.png,1,83,11,95,45"),
        "missing_image": _rows(GOOD[0], "gone.png,1,1,1,5,5"),
        "image_is_folder": _rows(GOOD[0], "folder.png,1,1,1,5,5"),
        "image_is_fifo": _rows(GOOD[0], "pipe.png,1,1,1,5,5"),
        "corrupt_image": _rows(GOOD[0], "corrupt.png,1,1,1,5,5"),
        "boxes_is_folder": "FOLDER",
        "boxes_is_fifo": "FIFO",
    }


def build(folder: Path) -> None:
    for name, text in _datasets().items():
        d = folder / name
        d.mkdir(parents=True, exist_ok=True)
        for k in range(3):
            shutil.copy(SAMPLES / f"{k:05d}.png", d / f"{k:05d}.png")
        shutil.copy(SAMPLES / "00000.png", d / "a,b.png")
        (d / "sub").mkdir(exist_ok=True)
        (d / "folder.png").mkdir(exist_ok=True)
        os.mkfifo(d / "pipe.png")
        (d / "corrupt.png").write_bytes((SAMPLES / "00000.png").read_bytes()[:100])
        os.symlink(Path(folder).resolve().parents[1] / "secrets" / "photo.png", d / "link_out.png")
        os.symlink("00000.png", d / "link_in.png")
        if text == "FOLDER":
            (d / "boxes.csv").mkdir()
        elif text == "FIFO":
            os.mkfifo(d / "boxes.csv")
        elif isinstance(text, bytes):
            (d / "boxes.csv").write_bytes(text)
        elif text is not None:
            (d / "boxes.csv").write_text(text, encoding="utf-8", newline="")
    (folder / "a_file").write_text("not a dataset")


def _evaluate(name: str, *extra: str) -> tuple[str, ...]:
    return evaluate_args(f"{{in}}/datasets/{name}", *extra)


def cases() -> list[Case]:
    refused = {
        "no_boxes_file": ("boxes.csv", "missing"),
        "empty_file": ("header",),
        "header_only": ("no rows",),
        "missing_column": ("lacks y1",),
        "semicolons": ("lacks",),
        "binary": ("UTF-8",),
        "nul_bytes": ("NUL",),
        "latin1": ("UTF-8",),
        "negative_label": ("label -1",),
        "label_out_of_range": ("label 10", "10 classes"),
        "label_enormous": ("label 99999999999999999999",),
        "label_float": ("whole numbers",),
        "label_text": ("whole numbers",),
        "negative_box": ("empty or negative",),
        "empty_box": ("empty or negative",),
        "too_few_fields": ("whole numbers",),
        "conflicting_labels": ("label 2 here but 1 above",),
        "no_name": ("no image name",),
        "huge_field": ("boxes.csv",),
        "dotdot_image": ("outside the dataset folder",),
        "absolute_image": ("absolute",),
        "symlink_outside": ("outside the dataset folder",),
        "boxes_is_folder": ("is a folder",),
        "boxes_is_fifo": ("not a regular file",),
    }
    fast = {
        "binary",
        "negative_label",
        "label_out_of_range",
        "dotdot_image",
        "absolute_image",
        "symlink_outside",
        "boxes_is_fifo",
        "good",
    }
    out = [
        Case(f"datasets/{name}", fails(BAD_INPUT, *fragments), _evaluate(name), fast=name in fast, timeout=60)
        for name, fragments in refused.items()
    ]
    valid = (
        "good",
        "extra_columns",
        "bom_and_crlf",
        "duplicated_rows",
        "quoted_comma_name",
        "spaces_around",
        "dotdot_inside",
        "symlink_inside",
        "too_many_fields",
    )
    out += [
        Case(f"datasets/{name}", ok("evaluation.json", "evaluation.md"), _evaluate(name), fast=name in fast) for name in valid
    ]
    per_item = {
        "box_beyond_image": ("00000.png", "outside the image"),
        "missing_image": ("gone.png", "not found"),
        "image_is_folder": ("folder.png", "is a folder"),
        "image_is_fifo": ("pipe.png", "not a regular file"),
        "corrupt_image": ("corrupt.png", "truncated"),
    }
    out += [
        Case(
            f"datasets/{name}",
            fails(ITEM_FAILED, files=("evaluation.json",)),
            _evaluate(name),
            timeout=60,
            verify=_mentions(*fragments),
        )
        for name, fragments in per_item.items()
    ]
    out += [
        Case("datasets/missing_folder", fails(BAD_INPUT, "not a folder"), _evaluate("nope")),
        Case("datasets/dataset_is_a_file", fails(BAD_INPUT, "not a folder"), _evaluate("a_file")),
        Case(
            "datasets/label_explain_out_of_range",
            fails(BAD_INPUT, "label 10"),
            _evaluate("label_out_of_range", "--explain", "label"),
        ),
        Case(
            "datasets/limit_keeps_checks",
            fails(BAD_INPUT, "outside the dataset folder"),
            _evaluate("dotdot_image", "--limit", "1"),
        ),
    ]
    return out


def _mentions(*fragments: str):
    """The evaluation table names the failed image and why."""

    def verify(ctx) -> list[str]:
        table = (ctx.out / "evaluation.md").read_text(encoding="utf-8") if (ctx.out / "evaluation.md").is_file() else ""
        return [f"evaluation.md lacks {f!r}" for f in fragments if f not in table]

    return verify
