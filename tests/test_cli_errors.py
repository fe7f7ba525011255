"""Bad input through the ``fixtrace`` command line (and the matching Python API errors).

The contract: every expected failure prints exactly one line ``fixtrace: error: ...`` on stderr
(argparse usage errors excepted), exits non-zero, and shows neither a Python traceback nor text
from Pillow, numba or onnxruntime internals. Odd but valid images (grey, RGBA, 16-bit, CMYK,
palette) are not failures: they are explained.

The CLI runs in a subprocess (``python -m fixtrace.cli``) and every call pays the numba and
onnxruntime start-up, so cases that can share one process (several bad images in one batch) do.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from conftest import run_cli
from fixtrace import Explainer, InputShapeError, ModelError, UnsupportedOpError
from fixtrace.fixations import supported_ops
from fixtrace.runtime.session import check_input_shape
from hostile.groups.images import png_header
from hostile.judge import LEAKS

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "mobilenet_v2.onnx"
CHELSEA = ROOT / "models" / "images" / "chelsea.jpg"
COFFEE = ROOT / "models" / "images" / "coffee.jpg"


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("fixtrace: error:")]


def assert_clean(proc: subprocess.CompletedProcess) -> None:
    """No traceback and nothing from library internals anywhere in the output."""
    text = proc.stdout + proc.stderr
    for marker in LEAKS:
        assert marker not in text, f"{marker!r} leaked into the output:\n{text}"


def assert_one_error(proc: subprocess.CompletedProcess, *fragments: str, code: int | None = None) -> str:
    """Exactly one non-empty stderr line, ``fixtrace: error: ...``, containing every fragment
    (besides the preprocessing line a run prints once the model is read)."""
    assert_clean(proc)
    lines = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("preprocessing: ")]
    assert len(lines) == 1, f"expected one stderr line, got {len(lines)}:\n{proc.stderr}"
    line = lines[0]
    assert line.startswith("fixtrace: error: "), line
    assert proc.returncode != 0
    if code is not None:
        assert proc.returncode == code, (proc.returncode, line)
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    return line


def assert_option_refused(proc: subprocess.CompletedProcess, option: str, code: int | None = None) -> None:
    """Refused either by argparse (usage message naming the option, exit 2) or as one fixtrace line."""
    assert_clean(proc)
    if "usage: fixtrace" in proc.stderr:
        assert proc.returncode == 2 and option in proc.stderr, proc.stderr
    else:
        assert_one_error(proc, option.lstrip("-"), code=code)


def tiny_model(
    shape=(1, 3, 32, 32), middle: str = "Relu", middle_name: str = "act", classes: int = 10, dims=None
) -> onnx.ModelProto:
    """Conv -> MIDDLE -> GlobalAveragePool -> Flatten -> Gemm, ir_version 8, opset 13."""
    rng = np.random.default_rng(0)
    channels = shape[1]
    inits = [
        numpy_helper.from_array(rng.normal(size=(4, channels, 3, 3)).astype(np.float32), "W"),
        numpy_helper.from_array(rng.normal(size=(4, classes)).astype(np.float32), "B"),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "W"], ["conv_out"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node(middle, ["conv_out"], ["mid_out"], name=middle_name),
        helper.make_node("GlobalAveragePool", ["mid_out"], ["pooled"], name="gap"),
        helper.make_node("Flatten", ["pooled"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "B"], ["logits"], name="fc"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, list(dims or shape))],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [(dims or shape)[0], classes])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model)
    return model


def rank2_model() -> onnx.ModelProto:
    """A classifier on a fixed (1, 5) vector: not an image model."""
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["input", "W"], ["logits"], name="fc")],
        "vector",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 5])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
        [numpy_helper.from_array(np.ones((5, 10), np.float32), "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model)
    return model


def dynamic_but_fixed_model() -> onnx.ModelProto:
    """Declares a symbolic (N, 3, H, W) input but flattens with a fixed Reshape to 4*32*32: it only
    runs on 32x32 inputs (a model exported with dynamic axes it cannot honour). With the default
    224x224 the shape error only shows up inside onnxruntime, at run time."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "W"),
        numpy_helper.from_array(np.array([1, 4 * 32 * 32], np.int64), "S"),
        numpy_helper.from_array(rng.normal(size=(4 * 32 * 32, 10)).astype(np.float32), "B"),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "W"], ["conv_out"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv_out"], ["relu_out"], name="relu"),
        helper.make_node("Reshape", ["relu_out", "S"], ["flat"], name="reshape"),
        helper.make_node("Gemm", ["flat", "B"], ["logits"], name="fc"),
    ]
    graph = helper.make_graph(
        nodes,
        "dynamic",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model)
    return model


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Every bad (and odd-but-valid) input, written once for the module."""
    d = tmp_path_factory.mktemp("inputs")
    f: dict[str, Path] = {}

    def put(name: str, data: bytes) -> None:
        f[name] = d / name
        f[name].write_bytes(data)

    model_bytes = MODEL.read_bytes()
    put("truncated.onnx", model_bytes[: len(model_bytes) // 2])
    put("garbage.onnx", np.random.default_rng(1234).bytes(4096))
    put("text.onnx", b"This is a README, renamed.\nIt is not a model at all.\n")
    put("empty.onnx", b"")
    put("sin.onnx", tiny_model(middle="Sin", middle_name="sin_node").SerializeToString())
    put("rank2.onnx", rank2_model().SerializeToString())
    put("four_channels.onnx", tiny_model(shape=(1, 4, 32, 32)).SerializeToString())
    put("dynamic_fixed.onnx", dynamic_but_fixed_model().SerializeToString())
    put("ok_tiny.onnx", tiny_model().SerializeToString())

    jpeg = CHELSEA.read_bytes()
    put("corrupt.jpg", jpeg[: len(jpeg) // 3])
    put("random.jpg", np.random.default_rng(5).bytes(3000))
    put("text.jpg", b"not a photo\n")
    put("huge.png", png_header(20000, 20000))
    put("bomb150.png", png_header(15000, 10000))
    put("labels_latin1.txt", "\n".join(f"caf\xe9 {i}" for i in range(10)).encode("latin-1"))

    rgb = np.asarray(Image.open(CHELSEA).convert("RGB"))
    photo = Image.fromarray(rgb)
    photo.convert("L").save(d / "grey.png")
    rgba = photo.convert("RGBA")
    rgba.putalpha(Image.fromarray(np.tile(np.linspace(0, 255, rgb.shape[1]).astype(np.uint8), (rgb.shape[0], 1))))
    rgba.save(d / "rgba.png")
    Image.fromarray(rgb[:, :, 1].astype(np.uint16) * 257).save(d / "grey16.png")
    photo.convert("CMYK").save(d / "cmyk.jpg")
    photo.convert("P").save(d / "palette.gif")
    for name in ("grey.png", "rgba.png", "grey16.png", "cmyk.jpg", "palette.gif"):
        f[name] = d / name
    return f


# --------------------------------------------------------------------------------------------
# Bad models: each stops before any image is read, exit 2.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, fragment",
    [
        ("truncated.onnx", "not a valid ONNX file"),
        ("garbage.onnx", "not a valid ONNX file"),
        ("text.onnx", "not a valid ONNX file"),
        ("empty.onnx", "empty (0 bytes)"),
        ("missing.onnx", "model file not found"),
    ],
)
def test_unreadable_model_is_one_line(files, tmp_path, name, fragment):
    model = files.get(name, tmp_path / name)
    proc = run_cli("explain", model, CHELSEA, "--out", tmp_path / "out", cwd=tmp_path)
    assert_one_error(proc, fragment, name, code=2)


def test_unsupported_op_names_op_node_and_supported_list(files, tmp_path):
    proc = run_cli("explain", files["sin.onnx"], CHELSEA, "--out", tmp_path / "out", cwd=tmp_path)
    line = assert_one_error(proc, "'Sin'", "'sin_node'", code=2)
    assert "supported ops: " + ", ".join(supported_ops()) in line
    assert "Sin" not in supported_ops()


def test_info_reports_unsupported_op(files, tmp_path):
    """`info` names the op and node that stop each walk, and lists the methods that still run."""
    proc = run_cli("info", files["sin.onnx"], cwd=tmp_path)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    methods = {line.split()[0]: line for line in proc.stdout.splitlines() if line.startswith("  ")}
    for walk in ("fixations", "saliency", "gradcam"):
        assert methods[walk].endswith("cannot run: unsupported op 'Sin' at node 'sin_node'"), methods[walk]
    assert methods["occlusion"].endswith("runs on this model") and methods["rise"].endswith("runs on this model")
    assert "fixation rules for:" in proc.stdout  # the supported ops, printed before the model


def test_non_image_model_input_is_a_model_error(files, tmp_path):
    proc = run_cli("explain", files["rank2.onnx"], CHELSEA, "--out", tmp_path / "out", cwd=tmp_path)
    assert_one_error(proc, "'input'", "rank 2", "rank-4", code=2)


def test_wrong_channel_count_is_refused_before_any_image(files, tmp_path):
    """A model wanting 4 channels is not an RGB or grey image classifier: refused at once (exit 2)."""
    proc = run_cli("explain", files["four_channels.onnx"], CHELSEA, "--out", tmp_path / "out", cwd=tmp_path)
    assert_one_error(proc, "'input'", "4 channels", "grey (1 channel) or colour (3 channel)", code=2)
    assert not (tmp_path / "out" / "summary.json").exists()


def test_shape_error_inside_onnxruntime_is_one_clean_line(files, tmp_path):
    """The model cannot run at the input size: found on a blank image before any photo (exit 2)."""
    proc = run_cli("explain", files["dynamic_fixed.onnx"], CHELSEA, "--out", tmp_path / "out", cwd=tmp_path)
    assert_one_error(proc, "reshape", code=2)


# --------------------------------------------------------------------------------------------
# Wrong input shapes through the Python API.
# --------------------------------------------------------------------------------------------


def test_session_run_rejects_wrong_tensor_shape(mobilenet):
    with pytest.raises(InputShapeError, match=r"'input' expects \?x3x224x224 \(NCHW\), got 1x3x100x100"):
        mobilenet.session.run(np.zeros((1, 3, 100, 100), np.float32))
    with pytest.raises(InputShapeError, match="got 3x224x224"):
        mobilenet.session.run(np.zeros((3, 224, 224), np.float32))
    with pytest.raises(InputShapeError, match="got 1x224x224x3"):
        mobilenet.session.run(np.zeros((1, 224, 224, 3), np.float32))


def test_check_input_shape(mobilenet):
    check_input_shape(mobilenet.graph, (1, 3, 224, 224))
    check_input_shape(mobilenet.graph, (7, 3, 224, 224))  # the batch dim is symbolic
    for bad in [(1, 3, 224), (1, 1, 224, 224), (1, 3, 224, 225), (1, 3, 224, 224, 1)]:
        with pytest.raises(InputShapeError):
            check_input_shape(mobilenet.graph, bad)


def test_api_model_shape_errors():
    with pytest.raises(ModelError, match="rank 2"):
        Explainer(rank2_model())
    with pytest.raises(UnsupportedOpError) as info:
        Explainer(tiny_model(middle="Sin", middle_name="sin_node"))
    assert (info.value.op_type, info.value.node_name) == ("Sin", "sin_node")
    assert info.value.supported == supported_ops()
    fixed_batch = Explainer(tiny_model(shape=(2, 3, 32, 32)))
    assert fixed_batch.explain(CHELSEA).heatmap.shape == (300, 451)  # one photo fills a batch of 2 with a zero row
    geometry = fixed_batch.explain(CHELSEA).geometry
    with pytest.raises(InputShapeError, match=r"expects 2x3x32x32 .*got 2x3x16x16"):
        fixed_batch.explain_batch([np.zeros((300, 451, 3), np.uint8)], np.zeros((1, 3, 16, 16), np.float32), [geometry])


def test_fixed_small_input_is_fitted_by_the_preset():
    """A model declaring (1, 3, 100, 100) is fed 100x100: not a shape error."""
    e = Explainer(tiny_model(shape=(1, 3, 100, 100))).explain(CHELSEA)
    assert e.heatmap.shape == (300, 451)


# --------------------------------------------------------------------------------------------
# Bad images: one batch, one line per failed image.
# --------------------------------------------------------------------------------------------

BAD_IMAGES = {
    "missing.jpg": ("image file not found",),
    "corrupt.jpg": ("corrupt or truncated",),
    "random.jpg": ("not an image format",),
    "text.jpg": ("not an image format",),
    "huge.png": ("100,000,000",),
}


@pytest.fixture(scope="module")
def bad_batch(files, tmp_path_factory):
    d = tmp_path_factory.mktemp("bad_batch")
    images = [files.get(name, d / name) for name in BAD_IMAGES]
    proc = run_cli("explain", MODEL, *images, "--out", d / "out", "--quiet", cwd=d)
    return proc, images, d / "out"


def test_bad_images_one_line_each(bad_batch):
    proc, images, out = bad_batch
    assert_clean(proc)
    assert proc.returncode == 1
    assert proc.stdout == ""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == len(images), proc.stderr
    for line, image in zip(lines, images):
        assert line.startswith(f"fixtrace: error: {image}: "), line
        for fragment in BAD_IMAGES[image.name]:
            assert fragment in line, line
    summary = json.loads((out / "summary.json").read_text())
    assert [s["image"] for s in summary] == [str(i) for i in images]
    assert all(s["status"] == "error" and s["error"] for s in summary)
    assert sorted(p.name for p in out.iterdir()) == ["summary.json"]


def test_huge_image_refused_from_header(bad_batch, files):
    """20000x20000 declared, only a few bytes of data: refused from the header without decoding
    (decoding would find the data truncated and say so instead)."""
    proc, _, _ = bad_batch
    line = next(line for line in error_lines(proc) if "huge.png" in line)
    assert "truncated" not in line
    assert "limit" in line or "too large" in line


def test_huge_image_message_names_size_and_limit(bad_batch):
    proc, _, _ = bad_batch
    line = next(line for line in error_lines(proc) if "huge.png" in line)
    assert "20000x20000" in line and "100,000,000" in line


def test_image_over_pillow_limit_is_one_line(files, tmp_path):
    proc = run_cli("explain", MODEL, files["bomb150.png"], "--out", tmp_path / "out", cwd=tmp_path)
    assert_one_error(proc, "15000x10000", "100,000,000", code=1)


def test_single_corrupt_jpeg_default_output(files, tmp_path):
    """Without --quiet and with one image: still exactly one line, exit 1."""
    proc = run_cli("explain", MODEL, files["corrupt.jpg"], "--out", tmp_path / "out", cwd=tmp_path)
    assert_one_error(proc, "corrupt.jpg", "corrupt or truncated", code=1)
    assert proc.stdout == ""


# --------------------------------------------------------------------------------------------
# Odd but valid images succeed.
# --------------------------------------------------------------------------------------------

ODD = {"grey.png": "L", "rgba.png": "RGBA", "grey16.png": "I;16", "cmyk.jpg": "CMYK", "palette.gif": "P"}


def test_odd_but_valid_images_are_explained(files, tmp_path):
    for name, mode in ODD.items():
        assert Image.open(files[name]).mode == mode  # the test really feeds that mode
    out = tmp_path / "out"
    proc = run_cli("explain", MODEL, *(files[n] for n in ODD), "--out", out, cwd=tmp_path)
    assert_clean(proc)
    assert proc.returncode == 0, proc.stderr
    assert error_lines(proc) == []
    assert "5 of 5 images explained" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert [s["status"] for s in summary] == ["ok"] * 5
    for name in ODD:
        folder = out / Path(name).stem
        assert sorted(p.name for p in folder.iterdir()) == [
            "explanation.json",
            "heatmap.npy",
            "heatmap.png",
            "input_map.npy",
            "overlay.png",
        ]
        assert Image.open(folder / "overlay.png").size == (451, 300)
        assert np.load(folder / "heatmap.npy").shape == (300, 451)
        assert json.loads((folder / "explanation.json").read_text())["target"]["index"] in (281, 282, 285)  # a cat


# --------------------------------------------------------------------------------------------
# A batch keeps going past a bad image.
# --------------------------------------------------------------------------------------------


def test_batch_with_a_corrupt_image_in_the_middle(files, tmp_path):
    out = tmp_path / "out"
    proc = run_cli("explain", MODEL, CHELSEA, files["corrupt.jpg"], COFFEE, "--out", out, cwd=tmp_path)
    assert_clean(proc)
    assert proc.returncode == 1
    errors = error_lines(proc)
    assert len(errors) == 1 and "corrupt.jpg" in errors[0] and "corrupt or truncated" in errors[0]
    assert "2 of 3 images explained" in proc.stdout
    for stem in ("chelsea", "coffee"):
        assert sorted(p.name for p in (out / stem).iterdir()) == [
            "explanation.json",
            "heatmap.npy",
            "heatmap.png",
            "input_map.npy",
            "overlay.png",
        ]
    assert not (out / "corrupt").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert [(Path(s["image"]).name, s["status"]) for s in summary] == [
        ("chelsea.jpg", "ok"),
        ("corrupt.jpg", "error"),
        ("coffee.jpg", "ok"),
    ]
    assert "corrupt or truncated" in summary[1]["error"]
    assert summary[0]["outputs"] == [str(out / "chelsea")] and summary[2]["outputs"] == [str(out / "coffee")]


# --------------------------------------------------------------------------------------------
# Bad options.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "option, fragments",
    [
        (["--class", "5000"], ("class index 5000 is out of range", "1000 classes")),
        (["--class", "-1"], ("class index -1 is out of range", "0..999")),
        (["--top-k", "0"], ("--top-k) must be a whole number between 1 and 1000", "not 0")),
    ],
)
def test_bad_class_selection(tmp_path, option, fragments):
    out = tmp_path / "out"
    proc = run_cli("explain", MODEL, CHELSEA, "--out", out, *option, cwd=tmp_path)
    assert_one_error(proc, *fragments)
    assert not (out / "chelsea").exists()


def test_bad_class_is_an_argument_error_reported_once(tmp_path):
    proc = run_cli("explain", MODEL, CHELSEA, COFFEE, "--out", tmp_path / "out", "--top-k", "0", "--quiet", cwd=tmp_path)
    assert_option_refused(proc, "--top-k", code=2)


def test_unknown_preset(tmp_path):
    proc = run_cli("explain", MODEL, CHELSEA, "--out", tmp_path / "out", "--preset", "nope", cwd=tmp_path)
    assert_one_error(proc, "unknown preprocessing preset 'nope'", "imagenet, caffe, tf, raw", code=2)


@pytest.mark.parametrize(
    "args",
    [
        ["explain", "model.onnx"],
        ["explain", "model.onnx", "x.jpg", "--conv-location", "middle"],
    ],
)
def test_argparse_usage_errors(tmp_path, args):
    proc = run_cli(*args, cwd=tmp_path)
    assert proc.returncode == 2
    assert "usage: fixtrace" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("option", [["--sigma", "0"], ["--box-threshold", "2"]])
def test_out_of_range_rendering_options_are_refused(files, tmp_path, option):
    proc = run_cli("explain", files["ok_tiny.onnx"], CHELSEA, "--out", tmp_path / "out", *option, cwd=tmp_path)
    assert_option_refused(proc, option[0])


def test_batch_size_below_one_is_refused(files, tmp_path):
    proc = run_cli("explain", files["ok_tiny.onnx"], CHELSEA, "--out", tmp_path / "out", "--batch-size", "0", cwd=tmp_path)
    assert_option_refused(proc, "--batch-size", code=2)


def test_device_cuda_without_cuda_is_one_line(tmp_path):
    """No GPU and no simulator: --device cuda says why and what to use instead."""
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fixtrace.cli",
            "explain",
            str(MODEL),
            str(CHELSEA),
            "--out",
            str(tmp_path / "out"),
            "--device",
            "cuda",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    if "--device cuda" not in proc.stderr and proc.returncode == 0:
        pytest.skip("this machine has a CUDA GPU")
    assert_one_error(proc, "device 'cuda' asked for, but CUDA cannot run here", "--device cpu", code=2)
    assert not (tmp_path / "out" / "chelsea").exists()


def test_out_is_a_file(files, tmp_path):
    target = tmp_path / "taken"
    target.write_text("a file, not a folder")
    proc = run_cli("explain", files["ok_tiny.onnx"], CHELSEA, "--out", target, cwd=tmp_path)
    line = assert_one_error(proc, str(target), code=2)
    assert "internal error" not in line


def test_labels_file_not_utf8(files, tmp_path):
    proc = run_cli(
        "explain", files["ok_tiny.onnx"], CHELSEA, "--out", tmp_path / "out", "--labels", files["labels_latin1.txt"], cwd=tmp_path
    )
    line = assert_one_error(proc, "labels_latin1.txt")
    assert "internal error" not in line
