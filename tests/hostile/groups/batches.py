"""Batch faults: one photo failing (to read, to explain, to write) must not cost the others."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from hostile import onnx_models as m
from hostile.case import BAD_INPUT, ITEM_FAILED, Case, Context, fails, ok
from hostile.corpus import CAMERA, CHELSEA, COFFEE, FASHION, MOBILENET

TINY = "{in}/batches/tiny.onnx"


def build(folder: Path) -> None:
    (folder / "tiny.onnx").write_bytes(m.classifier().SerializeToString())
    (folder / "batch_one.onnx").write_bytes(m.classifier(dims=(1, 3, 32, 32)).SerializeToString())
    (folder / "corrupt.jpg").write_bytes(CHELSEA.read_bytes()[:5000])
    crowd = folder / "crowd"
    crowd.mkdir(exist_ok=True)
    for k in range(19):
        shutil.copy([CHELSEA, COFFEE, CAMERA][k % 3], crowd / f"photo_{k:02d}.jpg")
    (crowd / "photo_07_bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 broken")
    small = folder / "small"
    small.mkdir(exist_ok=True)
    for k in range(4):
        shutil.copy(FASHION / "samples" / f"{k:05d}.png", small / f"{k:05d}.png")


def _explain(*images: str, extra: tuple[str, ...] = (), model: str = TINY) -> tuple[str, ...]:
    return ("explain", model, *images, "--out", "{out}", *extra)


def _plant(relative: str, kind: str):
    """Put something in --out before the run: a file, a symlink to a folder outside, or garbage JSON."""

    def prepare(ctx: Context) -> None:
        target = ctx.out / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if kind == "file":
            target.write_text("someone else's file")
        elif kind == "symlink":
            elsewhere = ctx.run / "elsewhere"
            elsewhere.mkdir()
            os.symlink(elsewhere, target)
        elif kind == "folder":
            target.mkdir()
        elif kind == "stale":
            target.mkdir()
            (target / "old.txt").write_text("from an earlier run")
        elif kind == "garbage":
            target.write_text('{"half": ')

    return prepare


def _summary_says(expected: dict[str, str]):
    """summary.json maps each photo's file name to the expected status."""

    def verify(ctx: Context) -> list[str]:
        path = ctx.out / "summary.json"
        if not path.is_file():
            return ["no summary.json"]
        entries = json.loads(path.read_text(encoding="utf-8"))
        seen = {Path(e["image"]).name: e["status"] for e in entries}
        problems = [
            f"{name}: {seen.get(name)!r} in the summary, expected {status!r}"
            for name, status in expected.items()
            if seen.get(name) != status
        ]
        elsewhere = ctx.run / "elsewhere"
        if elsewhere.exists() and any(elsewhere.iterdir()):
            problems.append("wrote through a symbolic link planted in --out")
        return problems

    return verify


def cases() -> list[Case]:
    photos = (str(CHELSEA), "{in}/batches/corrupt.jpg", str(COFFEE))
    return [
        Case(
            "batches/corrupt_in_the_middle",
            fails(ITEM_FAILED, "corrupt.jpg", files=("chelsea/overlay.png", "coffee/overlay.png"), absent=("corrupt",)),
            _explain(*photos),
            verify=_summary_says({"chelsea.jpg": "ok", "corrupt.jpg": "error", "coffee.jpg": "ok"}),
            fast=True,
        ),
        Case(
            "batches/corrupt_in_the_middle_gradcam",
            fails(ITEM_FAILED, "corrupt.jpg", files=("coffee/overlay.png",)),
            _explain(*photos, extra=("--method", "gradcam")),
        ),
        Case("batches/corrupt_in_the_middle_top3", fails(ITEM_FAILED, "corrupt.jpg"), _explain(*photos, extra=("--top-k", "3"))),
        Case(
            "batches/batch_of_one_model",
            ok("chelsea/overlay.png", "coffee/overlay.png"),
            _explain(str(CHELSEA), str(COFFEE), extra=("--batch-size", "8"), model="{in}/batches/batch_one.onnx"),
        ),
        Case(
            "batches/crowd_with_one_bad",
            fails(ITEM_FAILED, "photo_07_bad.jpg", files=("photo_18/overlay.png",)),
            _explain("{in}/batches/crowd", extra=("--batch-size", "4", "--quiet")),
            fast=True,
        ),
        Case(
            "batches/crowd_mobilenet",
            fails(ITEM_FAILED, "photo_07_bad.jpg", files=("photo_00/overlay.png",)),
            _explain("{in}/batches/crowd", extra=("--batch-size", "8"), model=str(MOBILENET)),
            timeout=300,
        ),
        *(
            Case(
                f"batches/output_folder_{name}",
                fails(ITEM_FAILED, "chelsea", files=("coffee/overlay.png",)),
                _explain(str(CHELSEA), str(COFFEE)),
                prepare=_plant("chelsea", thing),
                verify=_summary_says({"chelsea.jpg": "error", "coffee.jpg": "ok"}),
                fast=True,
            )
            for name, thing in (("taken_by_a_file", "file"), ("is_a_symlink", "symlink"))
        ),
        Case(
            "batches/stale_output_folder_replaced",
            ok("chelsea/overlay.png"),
            _explain(str(CHELSEA)),
            prepare=_plant("chelsea", "stale"),
        ),
        Case(
            "batches/summary_is_a_folder",
            fails(BAD_INPUT, "summary.json"),
            _explain(str(CHELSEA)),
            prepare=_plant("summary.json", "folder"),
        ),
        Case(
            "batches/summary_garbage_replaced",
            ok("summary.json"),
            _explain(str(CHELSEA), str(COFFEE)),
            prepare=_plant("summary.json", "garbage"),
        ),
        Case(
            "batches/file_too_large_for_one_photo",
            fails(ITEM_FAILED, "chelsea"),
            _explain("{in}/batches/small", str(CHELSEA)),
            file_size_limit=200_000,
            verify=_summary_says({"00000.png": "ok", "00003.png": "ok", "chelsea.jpg": "error"}),
        ),
    ]
