"""The happy paths of the ``fixtrace`` command line and of the Python API, on the bundled model.

The CLI runs in a subprocess (``python -m fixtrace.cli``); each call pays the numba and
onnxruntime start-up, so one call checks as much as it can.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

import fixtrace
from conftest import run_cli
from fixtrace import ClassScore, Explanation, LayerFixations, TargetError

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "mobilenet_v2.onnx"
CHELSEA = ROOT / "models" / "images" / "chelsea.jpg"
COFFEE = ROOT / "models" / "images" / "coffee.jpg"
OUTPUTS = ["explanation.json", "heatmap.npy", "heatmap.png", "input_map.npy", "overlay.png"]


def assert_ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "fixtrace: error" not in proc.stderr


def check_outputs(folder: Path, size: tuple[int, int]) -> dict:
    """The four files of one explanation; returns explanation.json."""
    width, height = size
    assert (folder / "overlay.png").is_file()
    with Image.open(folder / "overlay.png") as overlay:
        assert overlay.size == size and overlay.mode == "RGB"
    with Image.open(folder / "heatmap.png") as heat_png:
        assert heat_png.size == size
    heat = np.load(folder / "heatmap.npy")
    assert heat.dtype == np.float32 and heat.shape == (height, width)
    assert np.isfinite(heat).all() and heat.min() >= 0.0 and heat.max() == pytest.approx(1.0)
    data = json.loads((folder / "explanation.json").read_text())
    assert {"points", "box", "target", "top_classes"} <= set(data)
    assert data["image_size"] == [width, height]
    x0, y0, x1, y1 = data["box"]
    assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
    assert data["points"] and all({"x", "y", "count", "inlier"} <= set(p) for p in data["points"])
    assert all(0 <= p["x"] <= width - 1 and 0 <= p["y"] <= height - 1 and p["count"] > 0 for p in data["points"])
    top = data["top_classes"]
    assert len(top) == 5 and [c["probability"] for c in top] == sorted((c["probability"] for c in top), reverse=True)
    return data


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("default")
    proc = run_cli("explain", MODEL, CHELSEA, "--out", d / "out", cwd=d)
    return proc, d / "out"


def test_explain_prints_top5_with_imagenet_names(default_run):
    proc, _ = default_run
    assert_ok(proc)
    # one image: no progress line, only the preprocessing used
    assert proc.stderr.splitlines() == [
        "preprocessing: imagenet: resize the short side to 1.143 x the input side, centre crop, RGB, x * 0.00392157, "
        "- mean (0.485, 0.456, 0.406), / std (0.229, 0.224, 0.225) (default: the model carries no preprocessing metadata)"
    ]
    ranked = re.findall(r"^\s+([1-5])\.\s+(\d+) (.+?)\s+\d+\.\d\d%$", proc.stdout, flags=re.M)
    assert [r[0] for r in ranked] == ["1", "2", "3", "4", "5"]
    assert ranked[0][1:] == ("285", "Egyptian cat")
    assert {"281", "282"} <= {r[1] for r in ranked}  # tabby, tiger cat
    assert "explained 285 Egyptian cat" in proc.stdout


def test_explain_writes_the_four_outputs(default_run):
    proc, out = default_run
    assert_ok(proc)
    assert sorted(p.name for p in out.iterdir()) == ["chelsea", "summary.json"]
    assert sorted(p.name for p in (out / "chelsea").iterdir()) == OUTPUTS  # no per_layer.json without --layers
    data = check_outputs(out / "chelsea", (451, 300))
    assert data["target"]["index"] == 285 and data["target"]["name"] == "Egyptian cat"
    assert data["top_classes"][0]["index"] == 285
    assert data["settings"]["conv_location"] == "coarse-centre" and data["settings"]["rule"] == "spread"
    assert data["settings"]["preset"] == "imagenet"
    summary = json.loads((out / "summary.json").read_text())
    assert summary == [
        {"image": str(CHELSEA), "folder": "chelsea", "status": "ok", "outputs": [str(out / "chelsea")], "classes": [285]}
    ]


def test_explain_writes_jpeg_pictures_when_asked(tmp_path):
    """--image-format jpg: overlay.jpg and heatmap.jpg (the .npy maps unchanged), the methods'
    grid too; a photo named like a picture (``x.png.jpg``, folder ``x.png``) is still listed among
    the outputs, not taken for a grid."""
    photo = tmp_path / "x.png.jpg"
    shutil.copy(CHELSEA, photo)
    out = tmp_path / "out"
    proc = run_cli("explain", MODEL, photo, "--out", out, "--image-format", "jpg", "--quiet", cwd=tmp_path)
    assert_ok(proc)
    folder = out / "x.png"
    assert sorted(p.name for p in folder.iterdir()) == sorted(name.replace(".png", ".jpg") for name in OUTPUTS)
    for name in ("overlay.jpg", "heatmap.jpg"):
        with Image.open(folder / name) as picture:
            assert picture.format == "JPEG" and picture.size == (451, 300)
    assert np.load(folder / "heatmap.npy").shape == (300, 451)
    assert json.loads((out / "summary.json").read_text())[0]["outputs"] == [str(folder)]

    proc = run_cli(
        "explain", MODEL, CHELSEA, "--out", out, "--method", "fixations,gradcam", "--image-format", "jpg", "--quiet", cwd=tmp_path
    )
    assert_ok(proc)
    summary = json.loads((out / "summary.json").read_text())[0]
    assert summary["grids"] == [str(out / "chelsea" / "grid.jpg")]
    assert summary["outputs"] == [str(out / "chelsea" / "fixations"), str(out / "chelsea" / "gradcam")]
    with Image.open(out / "chelsea" / "grid.jpg") as grid:
        assert grid.format == "JPEG"
    bad = run_cli("explain", MODEL, CHELSEA, "--out", out, "--image-format", "bmp", cwd=tmp_path)
    assert bad.returncode == 2 and "invalid choice: 'bmp'" in bad.stderr


def test_explain_other_class_with_layers(tmp_path):
    out = tmp_path / "out"
    proc = run_cli("explain", MODEL, CHELSEA, "--out", out, "--class", "281", "--layers", "--quiet", cwd=tmp_path)
    assert_ok(proc)
    assert proc.stdout == ""  # --quiet
    folder = out / "chelsea"
    assert sorted(p.name for p in folder.iterdir()) == sorted(OUTPUTS + ["per_layer.json"])
    data = check_outputs(folder, (451, 300))
    assert data["target"]["index"] == 281 and data["target"]["name"] == "tabby"
    assert data["top_classes"][0]["index"] == 285  # the prediction is unchanged

    layers = json.loads((folder / "per_layer.json").read_text())
    assert isinstance(layers, list) and len(layers) > 50
    for row in layers:
        assert {"tensor", "node", "op_type", "shape", "fixations", "total_count", "positions"} <= set(row)
        assert row["fixations"] == len(row["positions"]) >= 1
        assert row["total_count"] == pytest.approx(sum(p[-1] for p in row["positions"]))
        assert all(len(p) == len(row["shape"]) for p in row["positions"])  # indices without the batch dim, then the count
    logits = layers[0]
    assert logits["tensor"] == "logits" and logits["op_type"] == "Gemm" and logits["shape"] == [1, 1000]
    assert logits["positions"] == [[281, 1.0]]
    image = next(row for row in layers if row["op_type"] == "Input")
    assert image["tensor"] == "input" and image["shape"] == [1, 3, 224, 224]
    assert {row["op_type"] for row in layers} >= {"Gemm", "Conv", "GlobalAveragePool", "Input"}


def test_explain_top_k_writes_one_folder_per_class(tmp_path):
    out = tmp_path / "out"
    proc = run_cli("explain", MODEL, CHELSEA, "--out", out, "--top-k", "3", cwd=tmp_path)
    assert_ok(proc)
    folder = out / "chelsea"
    subfolders = sorted(p.name for p in folder.iterdir())
    assert subfolders == ["281_tabby", "282_tiger_cat", "285_Egyptian_cat"]
    assert all((folder / name).is_dir() for name in subfolders)
    for name in subfolders:
        data = check_outputs(folder / name, (451, 300))
        assert data["target"]["index"] == int(name.split("_")[0])
    assert len(re.findall(r"^\s+explained \d+ ", proc.stdout, flags=re.M)) == 3
    summary = json.loads((out / "summary.json").read_text())
    assert summary[0]["classes"][0] == 285 and sorted(summary[0]["classes"]) == [281, 282, 285]
    assert len(summary[0]["outputs"]) == 3


def test_explain_folder_with_centre_conv_location(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(CHELSEA, photos / "chelsea.jpg")
    shutil.copy(COFFEE, photos / "coffee.JPG")
    (photos / "notes.txt").write_text("not an image")
    (photos / "sub.png").mkdir()  # a folder with an image suffix is not an image
    out = tmp_path / "out"
    proc = run_cli("explain", MODEL, photos, "--out", out, "--conv-location", "centre", cwd=tmp_path)
    assert_ok(proc)
    assert sorted(p.name for p in out.iterdir()) == ["chelsea", "coffee", "summary.json"]
    cat = check_outputs(out / "chelsea", (451, 300))
    cup = check_outputs(out / "coffee", (600, 400))
    assert cat["settings"]["conv_location"] == cup["settings"]["conv_location"] == "centre"
    assert cat["target"]["index"] == 285
    assert "2 of 2 images explained" in proc.stdout
    assert proc.stderr.count("2/2") == 1  # the progress line
    summary = json.loads((out / "summary.json").read_text())
    assert [Path(s["image"]).name for s in summary] == ["chelsea.jpg", "coffee.JPG"]
    assert [s["status"] for s in summary] == ["ok", "ok"]


def test_output_folders_never_collide(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    small = Image.open(CHELSEA).convert("RGB").resize((64, 48))
    small.save(photos / "a.jpg")
    small.save(photos / "a.png")
    small.save(photos / "a_2.jpg")
    out = tmp_path / "out"
    proc = run_cli("explain", MODEL, photos, "--out", out, "--quiet", cwd=tmp_path)
    assert_ok(proc)
    outputs = [s["outputs"][0] for s in json.loads((out / "summary.json").read_text())]
    assert len(set(outputs)) == 3, outputs


def test_info(tmp_path):
    proc = run_cli("info", cwd=tmp_path)
    assert_ok(proc)
    assert proc.stdout.startswith(f"fixtrace {fixtrace.__version__}\n")
    assert "CPUExecutionProvider" in proc.stdout
    assert re.search(r"^fixation rules for: .*\bConv\b.*\bGemm\b", proc.stdout, flags=re.M)
    # The test session runs numba's CUDA simulator, which never counts as a GPU.
    assert re.search(r"^numba CUDA: (GPU .+ \(compute capability \d+\.\d+\)|no GPU \(.+\))$", proc.stdout, flags=re.M)
    assert re.search(r"^backend for --device auto: (cpu|cuda) ", proc.stdout, flags=re.M)


def test_info_model(tmp_path):
    proc = run_cli("info", MODEL, cwd=tmp_path)
    assert_ok(proc)
    line = next(line for line in proc.stdout.splitlines() if line.startswith("model "))
    assert line.startswith(f"model {MODEL}: input 'input' (None, 3, 224, 224) NCHW")
    assert "logits 'logits' (1000 classes)" in line and "opset 13" in line
    assert "backend cpu" in line or "backend cuda" in line


# --------------------------------------------------------------------------------------------
# Python API
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference() -> Explanation:
    return fixtrace.explain(MODEL, CHELSEA)


def test_api_explanation(reference, tmp_path):
    e = reference
    assert isinstance(e, Explanation)
    assert isinstance(e.target, ClassScore) and (e.target.index, e.target.name) == (285, "Egyptian cat")
    assert len(e.top_classes) == 5 and e.top_classes[0].index == 285
    assert {c.index for c in e.top_classes[1:3]} == {281, 282}  # tabby and tiger cat, nearly tied
    assert e.points.ndim == 2 and e.points.shape[1] == 2 and len(e.points) > 10
    assert e.counts.shape == e.inliers.shape == (len(e.points),)
    assert e.heatmap.dtype == np.float32 and e.heatmap.shape == (300, 451)
    assert 0.0 <= e.heatmap.min() and e.heatmap.max() == pytest.approx(1.0)
    assert isinstance(e.box, tuple) and len(e.box) == 4 and all(isinstance(v, int) for v in e.box)
    assert isinstance(e.per_layer, Mapping) and "input" in e.per_layer and "logits" in e.per_layer
    assert all(isinstance(v, LayerFixations) for v in e.per_layer.values())
    assert e.per_layer["logits"].positions.tolist() == [[285]]

    written = e.save(tmp_path / "one")
    assert sorted(p.name for p in written) == OUTPUTS
    check_outputs(tmp_path / "one", (451, 300))
    assert (tmp_path / "two" / "per_layer.json") in e.save(tmp_path / "two", layers=True)


@pytest.mark.parametrize("kind", ["bytes", "proto"])
def test_api_model_sources(reference, kind):
    model = MODEL.read_bytes() if kind == "bytes" else onnx.load(str(MODEL))
    e = fixtrace.explain(model, CHELSEA)
    assert e.target.index == reference.target.index
    np.testing.assert_array_equal(e.points, reference.points)
    np.testing.assert_array_equal(e.heatmap, reference.heatmap)


@pytest.mark.parametrize("kind", ["bytes", "pil", "array"])
def test_api_image_sources(reference, kind):
    if kind == "bytes":
        image = CHELSEA.read_bytes()
    elif kind == "pil":
        image = Image.open(io.BytesIO(CHELSEA.read_bytes()))
    else:
        image = np.asarray(Image.open(CHELSEA).convert("RGB"))
    e = fixtrace.explain(MODEL, image)
    np.testing.assert_array_equal(e.points, reference.points)
    np.testing.assert_array_equal(e.heatmap, reference.heatmap)
    assert e.box == reference.box


def test_api_save_refuses_an_unknown_picture_format(reference, tmp_path):
    with pytest.raises(fixtrace.OptionError, match="image format must be one of png, jpg, not 'bmp'"):
        reference.save(tmp_path / "x", image_format="bmp")
    assert not (tmp_path / "x").exists()


def test_api_targets():
    several = fixtrace.explain(MODEL, CHELSEA, top_k=2)
    assert isinstance(several, list) and len(several) == 2
    assert several[0].target.index == 285 and several[1].target.index in (281, 282)
    chosen = fixtrace.explain(MODEL, CHELSEA, target=[282, 5])
    assert [e.target.index for e in chosen] == [282, 5]
    assert fixtrace.explain(MODEL, CHELSEA, target=np.int64(281)).target.name == "tabby"
    with pytest.raises(TargetError, match="1000 classes"):
        fixtrace.explain(MODEL, CHELSEA, target=1000)
