"""Odd file names and path kinds: names that try to leave ``--out`` or collide, and paths that are
not plain files."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from hostile import onnx_models as m
from hostile.case import BAD_INPUT, ITEM_FAILED, Case, Context, fails, ok
from hostile.corpus import CHELSEA, COFFEE

NAMES = {  # case -> the photo's file name
    "dot_stem": "..jpg",
    "dotdot_stem": "...jpg",
    "hidden": ".jpg",
    "summary_json": "summary.json.png",
    "summary_stem": "summary.jpg",
    "spaces": "a photo of a cat.jpg",
    "tab": "tab\there.jpg",
    "newline": "new\nline.jpg",
    "carriage_return": "cr\rname.jpg",
    "escape_sequence": "\x1b[31mred.jpg",
    "unicode": "ünïcödé chat.jpg",
    "emoji": "cat 😺.jpg",
    "rtl_override": "photo\u202egpj.exe.jpg",
    "long": "x" * 240 + ".jpg",
    "percent": "%s%n%d.jpg",
    "braces": "{0}{name}.jpg",
    "dash": "-dash.jpg",
    "backslash": "back\\slash.jpg",
    "colon": "colon:name.jpg",
    "windows_reserved": "CON.jpg",
    "only_symbols": "!!!.jpg",
}


def build(folder: Path) -> None:
    (folder / "tiny.onnx").write_bytes(m.classifier().SerializeToString())
    photo = CHELSEA.read_bytes()
    for name in NAMES.values():
        (folder / name).write_bytes(photo)
    os.makedirs(folder / "bytes", exist_ok=True)
    with open(os.path.join(os.fsencode(folder / "bytes"), b"bad\xff\xfe.jpg"), "wb") as f:
        f.write(photo)
    for sub in ("dup_a", "dup_b"):
        (folder / "same" / sub).mkdir(parents=True, exist_ok=True)
        (folder / "same" / sub / "cat.jpg").write_bytes(photo)
    (folder / "same" / "dup_a_cat.jpg").write_bytes(photo)  # the flattened name of dup_a/cat.jpg, taken already
    (folder / "cases").mkdir(exist_ok=True)
    (folder / "cases" / "Cat.jpg").write_bytes(photo)
    (folder / "cases" / "cat.jpg").write_bytes(COFFEE.read_bytes())
    (folder / "cases" / "CAT.png").write_bytes(photo)
    nested = folder / "nested" / "sub" / "deeper"
    nested.mkdir(parents=True, exist_ok=True)
    (folder / "nested" / "top.jpg").write_bytes(photo)
    (nested / "deep.jpg").write_bytes(photo)
    (folder / "nested" / "sub" / "readme.txt").write_text("not an image")
    (folder / "nested" / ".hidden.jpg").write_bytes(b"garbage that is skipped because hidden")
    (folder / "nested" / "._top.jpg").write_bytes(b"\x00\x05\x16\x07 AppleDouble resource fork")
    os.makedirs(folder / "nested" / ".git", exist_ok=True)
    (folder / "nested" / ".git" / "x.jpg").write_bytes(b"skipped")
    os.symlink("..", folder / "nested" / "sub" / "loop")
    (folder / "only_hidden").mkdir(exist_ok=True)
    (folder / "only_hidden" / ".secret.jpg").write_bytes(photo)
    (folder / "empty_folder").mkdir(exist_ok=True)
    (folder / "text_only").mkdir(exist_ok=True)
    (folder / "text_only" / "notes.txt").write_text("no photos here")
    specials = folder / "specials"
    specials.mkdir(exist_ok=True)
    (specials / "good.jpg").write_bytes(photo)
    os.mkfifo(specials / "pipe.jpg")
    os.symlink(specials / "gone.jpg", specials / "broken.jpg")
    os.symlink(CHELSEA, specials / "link.jpg")
    (specials / "folder.jpg").mkdir(exist_ok=True)
    os.mkfifo(folder / "pipe.jpg")
    os.symlink(folder / "gone.jpg", folder / "broken.jpg")
    os.symlink("/dev/zero", folder / "zero.jpg")
    shutil.copy(CHELSEA, folder / "plain.jpg")


def _explain(*images: str, extra: tuple[str, ...] = ()) -> tuple[str, ...]:
    return ("explain", "{in}/file_names/tiny.onnx", *images, "--out", "{out}", *extra)


def summary_sound(ctx: Context) -> list[str]:
    """The summary lists one distinct folder inside --out per explained photo, each holding its files."""
    path = ctx.out / "summary.json"
    if not path.is_file():
        return ["no summary.json"]
    entries = json.loads(path.read_text(encoding="utf-8"))
    problems = []
    folders = [e.get("folder") for e in entries if e.get("status") == "ok"]
    if len({f.casefold() for f in folders if f}) != len(folders):
        problems.append(f"folders not distinct (ignoring case): {folders}")
    for folder in folders:
        if not folder or "/" in folder or folder.startswith("."):
            problems.append(f"unsafe folder name {folder!r}")
        elif not (ctx.out / folder / "overlay.png").is_file():
            problems.append(f"{folder}/overlay.png missing")
    return problems


def cases() -> list[Case]:
    fast = {"dot_stem", "dotdot_stem", "summary_json", "newline", "unicode", "long", "rtl_override"}
    out = [
        Case(
            f"file_names/{case}",
            ok("summary.json"),
            _explain(f"{{in}}/file_names/{name}"),
            verify=summary_sound,
            fast=case in fast,
        )
        for case, name in NAMES.items()
    ]
    out += [
        Case(
            "file_names/all_at_once",
            ok("summary.json"),
            _explain(*(f"{{in}}/file_names/{n}" for n in NAMES.values())),
            verify=summary_sound,
            fast=True,
        ),
        Case("file_names/undecodable_bytes", ok("summary.json"), _explain("{in}/file_names/bytes"), verify=summary_sound),
        Case(
            "file_names/same_names_two_folders",
            ok("summary.json"),
            _explain("{in}/file_names/same"),
            verify=summary_sound,
            fast=True,
        ),
        Case("file_names/names_differing_in_case", ok("summary.json"), _explain("{in}/file_names/cases"), verify=summary_sound),
        Case(
            "file_names/same_photo_twice",
            ok("summary.json", "plain", "plain_2"),
            _explain("{in}/file_names/plain.jpg", "{in}/file_names/plain.jpg"),
            verify=summary_sound,
        ),
        Case(
            "file_names/nested_folders",
            ok("summary.json", "top", "sub_deeper_deep"),
            _explain("{in}/file_names/nested"),
            verify=summary_sound,
            fast=True,
        ),
        Case("file_names/only_hidden_files", fails(BAD_INPUT, "no images"), _explain("{in}/file_names/only_hidden")),
        Case("file_names/empty_folder", fails(BAD_INPUT, "no images"), _explain("{in}/file_names/empty_folder")),
        Case("file_names/folder_without_photos", fails(BAD_INPUT, "no images"), _explain("{in}/file_names/text_only")),
        Case(
            "file_names/specials_in_a_folder",
            fails(ITEM_FAILED, "pipe.jpg", "not a regular file", "broken.jpg", "broken symbolic link", lines=2),
            _explain("{in}/file_names/specials"),
            verify=summary_sound,
            fast=True,
            timeout=60,
        ),
        Case("file_names/fifo", fails(ITEM_FAILED, "not a regular file"), _explain("{in}/file_names/pipe.jpg"), timeout=60),
        Case("file_names/broken_symlink", fails(ITEM_FAILED, "broken symbolic link"), _explain("{in}/file_names/broken.jpg")),
        Case("file_names/dev_zero", fails(ITEM_FAILED, "not a regular file"), _explain("{in}/file_names/zero.jpg"), timeout=60),
        Case("file_names/missing", fails(ITEM_FAILED, "not found"), _explain("{in}/file_names/missing.jpg")),
        Case("file_names/missing_folder", fails(ITEM_FAILED, "not found"), _explain("{in}/file_names/missing/")),
        Case("file_names/folder_with_slash", ok("summary.json"), _explain("{in}/file_names/same/"), verify=summary_sound),
        Case(
            "file_names/out_with_odd_name",
            ok("ünï code\nout/chelsea/overlay.png"),
            ("explain", "{in}/file_names/tiny.onnx", str(CHELSEA), "--out", "{out}/ünï code\nout"),
        ),
    ]
    return out
