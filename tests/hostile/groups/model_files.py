"""Broken model files: truncated, byte-flipped, not ONNX at all, or not a file."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from hostile import onnx_models as m
from hostile.case import BAD_INPUT, ITEM_FAILED, OK, Case, Expect, fails, ok
from hostile.corpus import CHELSEA, FASHION, MOBILENET

TINY_CUTS = (1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987, 1597)
FLIPS = 48
FASHION_FLIPS = 16


def _tiny() -> bytes:
    return m.classifier().SerializeToString()


def build(folder: Path) -> None:
    tiny = _tiny()
    (folder / "tiny.onnx").write_bytes(tiny)
    for cut in TINY_CUTS:
        if cut < len(tiny):
            (folder / f"tiny_cut_{cut}.onnx").write_bytes(tiny[:cut])
    (folder / "tiny_minus_one.onnx").write_bytes(tiny[:-1])
    rng = np.random.default_rng(2026)
    for k in range(FLIPS):
        data = bytearray(tiny)
        at = int(rng.integers(0, len(data)))
        data[at] ^= int(rng.integers(1, 256))
        (folder / f"tiny_flip_{k}.onnx").write_bytes(bytes(data))
    vgg = (FASHION / "vgg.onnx").read_bytes()
    for k in range(FASHION_FLIPS):
        data = bytearray(vgg)
        at = int(rng.integers(0, 4096)) if k % 2 else int(rng.integers(0, len(data)))  # the graph, or anywhere
        data[at] ^= int(rng.integers(1, 256))
        (folder / f"vgg_flip_{k}.onnx").write_bytes(bytes(data))
    for fraction in (0.5, 0.9):
        (folder / f"vgg_cut_{int(fraction * 100)}.onnx").write_bytes(vgg[: int(len(vgg) * fraction)])
    mobilenet = MOBILENET.read_bytes()
    (folder / "mobilenet_half.onnx").write_bytes(mobilenet[: len(mobilenet) // 2])
    (folder / "mobilenet_minus_one.onnx").write_bytes(mobilenet[:-1])
    (folder / "empty.onnx").write_bytes(b"")
    (folder / "zeros.onnx").write_bytes(bytes(4096))
    (folder / "random.onnx").write_bytes(np.random.default_rng(7).bytes(1 << 16))
    (folder / "text.onnx").write_text("This is a README, renamed.\nIt is not a model at all.\n")
    (folder / "json.onnx").write_text('{"irVersion": "8", "graph": {"node": []}}')
    (folder / "gzipped.onnx").write_bytes(gzip.compress(tiny))
    (folder / "png.onnx").write_bytes(CHELSEA.read_bytes())
    (folder / "doubled.onnx").write_bytes(tiny + tiny)  # protobuf merges two copies: duplicated nodes
    (folder / "folder.onnx").mkdir(exist_ok=True)
    os.mkfifo(folder / "fifo.onnx")
    os.symlink(folder / "nowhere.onnx", folder / "broken_link.onnx")
    os.symlink(folder / "tiny.onnx", folder / "link.onnx")
    os.symlink("/dev/zero", folder / "dev_zero.onnx")
    with open(folder / "sparse_3gb.onnx", "wb") as f:  # a sparse file: no disk used
        f.truncate(3 * 1024**3)
    (folder / "with space & ünïcode.onnx").write_bytes(tiny)


def _explain(name: str, *extra: str) -> tuple[str, ...]:
    return ("explain", f"{{in}}/model_files/{name}", str(CHELSEA), "--out", "{out}", *extra)


#: Any clean ending: explained, or refused with one line (a flipped byte may leave a valid model,
#: corrupt the structure, or land in a weight).
CLEAN = Expect((OK, ITEM_FAILED, BAD_INPUT))


def cases() -> list[Case]:
    out = [
        Case(
            f"model_files/tiny_cut_{cut}",
            fails(BAD_INPUT, f"tiny_cut_{cut}.onnx"),
            _explain(f"tiny_cut_{cut}.onnx"),
            fast=cut in (1, 89, 987),
        )
        for cut in TINY_CUTS
    ]
    out += [Case(f"model_files/tiny_flip_{k}", CLEAN, _explain(f"tiny_flip_{k}.onnx"), fast=k % 12 == 0) for k in range(FLIPS)]
    out += [
        Case(f"model_files/vgg_flip_{k}", CLEAN, _explain(f"vgg_flip_{k}.onnx", "--preset", "raw"), fast=k == 1)
        for k in range(FASHION_FLIPS)
    ]
    refused = {
        "tiny_minus_one.onnx": "not a valid ONNX file",
        "vgg_cut_50.onnx": "not a valid ONNX file",
        "vgg_cut_90.onnx": "not a valid ONNX file",
        "mobilenet_half.onnx": "not a valid ONNX file",
        "mobilenet_minus_one.onnx": "not a valid ONNX file",
        "empty.onnx": "empty",
        "zeros.onnx": "not a valid ONNX file",
        "random.onnx": "not a valid ONNX file",
        "text.onnx": "not a valid ONNX file",
        "json.onnx": "not a valid ONNX file",
        "gzipped.onnx": "not a valid ONNX file",
        "png.onnx": "not a valid ONNX file",
        "folder.onnx": "is a folder",
        "fifo.onnx": "not a regular file",
        "broken_link.onnx": "broken symbolic link",
        "dev_zero.onnx": "not a regular file",
        "sparse_3gb.onnx": "2 GB",
        "missing.onnx": "not found",
    }
    fast = {"mobilenet_half.onnx", "empty.onnx", "fifo.onnx", "folder.onnx", "sparse_3gb.onnx", "gzipped.onnx"}
    out += [
        Case(
            f"model_files/{name.removesuffix('.onnx')}",
            fails(BAD_INPUT, fragment, name),
            _explain(name),
            fast=name in fast,
            timeout=60,
        )
        for name, fragment in refused.items()
    ]
    out += [
        Case("model_files/doubled", CLEAN, _explain("doubled.onnx")),
        Case("model_files/symlink_to_model", ok("chelsea/overlay.png"), _explain("link.onnx")),
        Case("model_files/odd_name", ok("chelsea/overlay.png"), _explain("with space & ünïcode.onnx"), fast=True),
        Case(
            "model_files/info_on_truncated",
            fails(BAD_INPUT, "not a valid ONNX file"),
            ("info", "{in}/model_files/mobilenet_half.onnx"),
        ),
        Case(
            "model_files/layers_on_fifo",
            fails(BAD_INPUT, "not a regular file"),
            ("layers", "{in}/model_files/fifo.onnx"),
            timeout=60,
        ),
        Case(
            "model_files/evaluate_on_folder",
            fails(BAD_INPUT, "is a folder"),
            ("evaluate", "{in}/model_files/folder.onnx", str(FASHION / "samples"), "--out", "{out}", "--preset", "raw"),
        ),
    ]
    return out
