"""Preprocessing presets: the model's metadata preset as the default, explicit presets, JSON files,
the CLI's field overrides and the printed preprocessing line, labels from the metadata, and the
letterbox and EfficientNet-Lite presets on a real photo."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

import fixtrace
from conftest import IMAGES, MODELS
from fixtrace import PRESETS, ModelError, OptionError, Preset, choose_preset
from fixtrace.cli import main
from fixtrace.images.load import load_image
from fixtrace.images.preprocess import preprocess
from fixtrace.images.presets import METADATA_KEY, preset_from_model
from fixtrace.labels import class_names, labels_from_model
from fixtrace.model.layer_graph import ImageInput, LayerGraph

MODEL = MODELS / "mobilenet_v2.onnx"
CHELSEA = IMAGES / "chelsea.jpg"  # 451 x 300
FASHION = MODELS / "fashion"
NCHW_224 = ImageInput("input", (1, 3, 224, 224), "NCHW")
LABELS = [f"label {i}" for i in range(1000)]
DEFAULT_NOTE = "(default: the model carries no preprocessing metadata)"


def with_metadata(path: Path, props: dict[str, str]) -> Path:
    """A copy of the bundled MobileNetV2 with ``props`` in its metadata, saved at ``path``."""
    model = onnx.load(MODEL)
    for key, value in props.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, path)
    return path


@pytest.fixture(scope="module")
def caffe_model(tmp_path_factory) -> Path:
    """MobileNetV2 whose metadata says Caffe preprocessing (layout NCHW) and names its classes."""
    preset = replace(PRESETS["caffe"], layout="NCHW")
    props = preset.to_metadata() | {"fixtrace.labels": json.dumps(LABELS)}
    return with_metadata(tmp_path_factory.mktemp("meta") / "caffe.onnx", props)


@pytest.fixture(scope="module")
def mobilenet_graph() -> LayerGraph:
    return LayerGraph.from_model(onnx.load(MODEL))


def graph_with(props: dict[str, str]) -> LayerGraph:
    model = onnx.load(MODEL)
    for key, value in props.items():
        model.metadata_props.add(key=key, value=value)
    return LayerGraph.from_model(model)


def cli(capsys, *args) -> tuple[int, str, str]:
    """``fixtrace ARGS`` in this process (the kernels are compiled once per test session)."""
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ---------------------------------------------------------------------------------------------- choosing


def test_metadata_preset_is_the_default_and_is_recorded(caffe_model):
    explainer = fixtrace.Explainer(caffe_model, device="cpu")
    assert explainer.preset == replace(PRESETS["caffe"], layout="NCHW") and explainer.preset_source == "metadata"
    e = explainer.explain(CHELSEA)
    assert e.settings["preset"] == "caffe"
    assert e.settings["preprocessing"] == explainer.preset.to_dict() and e.settings["preprocessing_source"] == "metadata"
    assert e.settings["preprocessing"]["bgr"] is True and e.settings["preprocessing"]["mean"] == [104.0, 117.0, 123.0]
    assert e.target.name == f"label {e.target.index}"  # the metadata's names


def test_explicit_preset_wins_over_metadata(caffe_model, tmp_path):
    explainer = fixtrace.Explainer(caffe_model, preset="ImageNet", device="cpu")
    assert explainer.preset is PRESETS["imagenet"] and explainer.preset_source == "given"
    graph = graph_with(PRESETS["caffe"].to_metadata())
    assert choose_preset(PRESETS["tf"]).resolve(graph) == (PRESETS["tf"], "given")
    file = tmp_path / "mine.json"
    file.write_text(json.dumps({"resize": "exact", "scale": 0.5}))
    preset, source = choose_preset(file).resolve(graph)
    assert (preset.name, preset.resize, preset.scale, source) == ("mine", "exact", 0.5, "file")
    assert choose_preset(str(file)).resolve(graph)[1] == "file"


def test_no_metadata_means_imagenet(mobilenet_graph):
    assert choose_preset(None).resolve(mobilenet_graph) == (PRESETS["imagenet"], "default")


def test_overrides_apply_on_top_of_the_metadata_preset():
    graph = graph_with(PRESETS["caffe"].to_metadata())
    preset, source = choose_preset(None, {"crop": 0.875, "mean": 0, "bgr": False}).resolve(graph)
    assert source == "metadata" and preset.name == "caffe+custom"
    assert preset.resize == "short" and preset.resize_ratio == pytest.approx(1 / 0.875)
    assert preset.mean == (0.0, 0.0, 0.0) and preset.bgr is False and preset.std == PRESETS["caffe"].std


@pytest.mark.parametrize("declared", ["NHWC", "nhwc"])
def test_metadata_layout_must_match_the_graph(tmp_path, declared):
    values = PRESETS["imagenet"].to_dict() | {"layout": declared}
    path = with_metadata(tmp_path / "nhwc.onnx", {METADATA_KEY: json.dumps(values)})
    with pytest.raises(ModelError, match=r"^the model's metadata declares input layout NHWC, but fixtrace reads .*as NCHW"):
        fixtrace.Explainer(path, device="cpu")
    graph = graph_with({METADATA_KEY: json.dumps(values | {"layout": "NCHW"})})
    assert choose_preset(None).resolve(graph)[0].layout == "NCHW"


def test_invalid_metadata_preset_is_a_model_error():
    with pytest.raises(ModelError, match=r"'fixtrace.preprocessing' is not JSON"):
        choose_preset(None).resolve(graph_with({METADATA_KEY: "{mean: 1"}))
    with pytest.raises(ModelError, match=r"field 'std' must be non-zero"):
        choose_preset(None).resolve(graph_with({METADATA_KEY: '{"std": 0}'}))


@pytest.mark.parametrize(
    "preset, fields, message",
    [
        ("nope", {}, "unknown preprocessing preset 'nope'"),
        (3, {}, "must be a preset name, a Preset or a JSON file, not int"),
        ("no/such/preset.json", {}, "cannot read preset file no/such/preset.json"),
        (None, {"crop": 0}, r"crop fraction must be in \(0, 1\]"),
        (None, {"crop": 0.9, "resize": "exact"}, "cannot go with resize 'exact'"),
        (None, {"gamma": 2}, "unknown preprocessing field 'gamma'"),
        (None, {"scale": "1/255"}, "field 'scale' must be a positive number"),
    ],
)
def test_bad_choices(preset, fields, message):
    with pytest.raises(OptionError, match=message):
        choose_preset(preset, fields)


# ---------------------------------------------------------------------------------------------- JSON forms


@pytest.mark.parametrize("name", list(PRESETS))
def test_json_round_trip(name, tmp_path):
    preset = PRESETS[name]
    assert Preset.from_dict(preset.to_dict(), "test") == preset
    assert Preset.from_dict(json.loads(json.dumps(preset.to_dict())), "test") == preset
    with_layout = replace(preset, layout="NHWC")
    assert Preset.from_dict(with_layout.to_dict(), "test") == with_layout
    file = tmp_path / "p.json"
    file.write_text(json.dumps(preset.to_dict()))
    assert Preset.from_file(file) == preset
    model = onnx.ModelProto()
    for key, value in preset.to_metadata().items():
        model.metadata_props.add(key=key, value=value)
    assert preset_from_model(model) == preset


@pytest.mark.parametrize(
    "values, message",
    [
        ([1, 2], "must be a JSON object, not list"),
        ({"gamma": 1}, "unknown preprocessing field 'gamma'"),
        ({"resize": "fit"}, "'resize' must be one of short, exact, letterbox, not 'fit'"),
        ({"bgr": "yes"}, "'bgr' must be true or false"),
        ({"mean": [1, 2]}, "'mean' must be a number or a list of 1 or 3 numbers"),
        ({"std": [1, 0, 1]}, "'std' must be non-zero"),
        ({"scale": -1}, "'scale' must be a positive number"),
        ({"resize_ratio": 0.5}, "'resize_ratio' must be at least 1"),
        ({"default_size": 0}, "'default_size' must be an integer from 1 to 8192"),
        ({"name": 7}, "'name' must be a string"),
        ({"layout": "NCWH"}, "unknown input layout"),
    ],
)
def test_invalid_fields(values, message):
    with pytest.raises(OptionError, match=message):
        Preset.from_dict(values, "preset file x.json")


def test_preset_file_defaults_and_name(tmp_path):
    file = tmp_path / "timm.json"
    file.write_text('{"mean": [0.5, 0.5, 0.5], "std": 0.5}')
    preset = Preset.from_file(file)
    assert preset == replace(PRESETS["raw"], name="timm", description="", mean=(0.5,) * 3, std=(0.5,) * 3)
    file.write_text("{nope")
    with pytest.raises(OptionError, match="cannot read preset file"):
        Preset.from_file(file)


# ---------------------------------------------------------------------------------------------- tensors


def resized(photo: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(Image.fromarray(photo).resize(size, Image.Resampling.BILINEAR), dtype=np.float32)


def test_letterbox_on_a_photo():
    photo = load_image(CHELSEA)
    assert photo.shape == (300, 451, 3)
    tensor, geometry = preprocess(photo, NCHW_224, PRESETS["letterbox"])
    # 451 x 300 fits 224 wide: 224 x 149 (300 * 224 / 451 = 149.0), centred: 38 rows of black above, 37 below.
    assert geometry.resized == (224, 149) and geometry.crop == (0, -38)
    assert tensor.shape == (3, 224, 224)
    assert not tensor[:, :38].any() and not tensor[:, 38 + 149 :].any()
    inside = resized(photo, (224, 149))
    for x, y in [(0, 0), (100, 70), (223, 148)]:
        np.testing.assert_allclose(tensor[:, 38 + y, x], inside[y, x] / 255, rtol=0, atol=1e-6)


def test_efficientnet_lite_on_a_photo():
    photo = load_image(CHELSEA)
    nhwc = ImageInput("images", (1, 224, 224, 3), "NHWC")
    tensor, geometry = preprocess(photo, nhwc, PRESETS["efficientnet-lite"])
    # short side 300 -> 256 (224 * 256 / 224), long side int(256 * 451 / 300) = 384; centre crop at (80, 16)
    assert geometry.resized == (384, 256) and geometry.crop == (80, 16)
    assert tensor.shape == (224, 224, 3)
    big = resized(photo, (384, 256))
    for x, y in [(0, 0), (111, 57), (223, 223)]:
        np.testing.assert_allclose(tensor[y, x], (big[16 + y, 80 + x] - 127) / 128, rtol=0, atol=1e-6)
    assert tensor.min() >= -127 / 128 and tensor.max() <= 1.0


# ---------------------------------------------------------------------------------------------- labels


def test_labels_from_metadata_and_a_labels_file_wins(caffe_model, tmp_path):
    model = onnx.load(caffe_model)
    assert labels_from_model(model) == LABELS and class_names(1000, None, model) == LABELS
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"mine {i}\n" for i in range(1000)))
    assert class_names(1000, labels, model)[7] == "mine 7"
    assert labels_from_model(onnx.load(MODEL)) is None and class_names(1000, None, onnx.load(MODEL))[285] == "Egyptian cat"


@pytest.mark.parametrize(
    "value, message",
    [
        ("[oops", "'fixtrace.labels' is not JSON"),
        ('{"0": "cat"}', "must be a JSON list of class names"),
        ("[1, 2]", "must be a JSON list of class names"),
        ('["cat", "dog"]', "has 2 class names for 1000 classes"),
    ],
)
def test_bad_metadata_labels(value, message):
    model = onnx.ModelProto()
    model.metadata_props.add(key="fixtrace.labels", value=value)
    with pytest.raises(ModelError, match=message):
        class_names(1000, None, model)
    # a labels file wins, and the metadata is not even read
    assert class_names(2, MODELS / "fashion" / "labels.txt", model)


# ---------------------------------------------------------------------------------------------- CLI


def test_cli_prints_the_metadata_preset_with_overrides(caffe_model, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, err = cli(capsys, "explain", caffe_model, CHELSEA, "--out", out, "--mean", "100", "--rgb", "--crop", "0.875")
    assert code == 0, err
    assert err.splitlines() == [
        "preprocessing: caffe+custom: resize the short side to 1.143 x the input side, centre crop, RGB, x * 1, "
        "- mean (100, 100, 100) (from the model's metadata; changed by --mean, --crop, --rgb)"
    ]
    settings = json.loads((out / "chelsea" / "explanation.json").read_text())["settings"]
    assert settings["preset"] == "caffe+custom" and settings["preprocessing"]["mean"] == [100.0] * 3
    assert (
        settings["preprocessing"]["resize_ratio"] == pytest.approx(1 / 0.875) and settings["preprocessing_source"] == "metadata"
    )
    assert "label " in stdout  # the metadata's class names


def test_cli_preset_file_scale_fraction_and_quiet(tmp_path, capsys):
    file = tmp_path / "p.json"
    file.write_text('{"name": "mine", "resize": "letterbox", "mean": [0.5, 0.5, 0.5], "std": 0.5}')
    code, _, err = cli(capsys, "explain", MODEL, CHELSEA, "--out", tmp_path / "a", "--preset-file", file, "--scale", "1/255")
    assert code == 0, err
    assert err.splitlines() == [
        "preprocessing: mine+custom: fit inside the input keeping the aspect ratio, pad with black, RGB, x * 0.00392157, "
        f"- mean (0.5, 0.5, 0.5), / std (0.5, 0.5, 0.5) (--preset-file {file}; changed by --scale)"
    ]
    code, _, err = cli(capsys, "explain", MODEL, CHELSEA, "--out", tmp_path / "b", "--preset", "tf", "--bgr", "--quiet")
    assert code == 0 and err == ""
    settings = json.loads((tmp_path / "b" / "chelsea" / "explanation.json").read_text())["settings"]
    assert settings["preprocessing"] == replace(PRESETS["tf"], name="tf+custom", bgr=True, description="").to_dict()
    assert settings["preprocessing_source"] == "given"


def test_cli_default_line_evaluate_and_info(tmp_path, capsys):
    code, stdout, err = cli(
        capsys,
        "evaluate",
        FASHION / "resnet.onnx",
        FASHION / "samples",
        "--methods",
        "centre-gaussian",
        "--perturbation",
        "0",
        "--limit",
        "2",
        "--quiet",
        "--out",
        tmp_path / "ev",
        "--std",
        "0.5",
    )
    assert code == 0, err
    assert "preprocessing:" not in err  # --quiet
    settings = json.loads((tmp_path / "ev" / "evaluation.json").read_text())["settings"]
    assert (
        settings["preprocessing"]
        == replace(PRESETS["imagenet"], name="imagenet+custom", std=(0.5,) * 3, description="").to_dict()
    )
    assert settings["preprocessing_source"] == "default"
    code, stdout, err = cli(capsys, "info", MODEL)
    assert code == 0 and f"preprocessing: {PRESETS['imagenet'].describe()} {DEFAULT_NOTE}" in stdout.splitlines()


def test_cli_evaluate_prints_the_preprocessing(tmp_path, capsys):
    args = ("evaluate", FASHION / "resnet.onnx", FASHION / "samples", "--methods", "centre-gaussian", "--perturbation", "0")
    code, _, err = cli(capsys, *args, "--limit", "1", "--out", tmp_path / "ev", "--preset", "raw")
    assert code == 0, err
    assert f"preprocessing: {PRESETS['raw'].describe()} (--preset)" in err.splitlines()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--mean", "1,2"], "--mean must be one number or three comma-separated numbers, not '1,2'"),
        (["--mean", "a,b,c"], "--mean must be a number (a fraction such as 1/255 too), not 'a'"),
        (["--std", "0.2,0,0.2"], "--std: preprocessing field 'std' must be non-zero"),
        (["--scale", "1/0"], "--scale must be a number (a fraction such as 1/255 too), not '1/0'"),
        (["--scale", "-2"], "--scale: preprocessing field 'scale' must be a positive number"),
        (["--scale", "nan"], "--scale: preprocessing field 'scale' must be a positive number"),
        (["--resize", "fit"], "--resize: preprocessing field 'resize' must be one of short, exact, letterbox"),
        (["--crop", "1.2"], "--crop: the crop fraction must be in (0, 1], e.g. 0.875, or none, not 1.2"),
        (["--crop", "0"], "--crop: the crop fraction must be in (0, 1]"),
        (["--crop", "0.9", "--resize", "letterbox"], "--crop sets resize 'short' with ratio 1/crop; it cannot go with --resize"),
        (["--preset", "imagenett"], "unknown preprocessing preset 'imagenett' (did you mean 'imagenet'?)"),
        (["--preset-file", "no-such.json"], "cannot read preset file no-such.json"),
    ],
)
@pytest.mark.parametrize("verb", ["explain", "evaluate", "layers"])
def test_cli_bad_preprocessing_flags(verb, flags, message, tmp_path, capsys):
    args = {"explain": [MODEL, CHELSEA, "--out", tmp_path / "o"], "evaluate": [MODEL, tmp_path], "layers": [MODEL]}[verb]
    code, stdout, err = cli(capsys, verb, *args, *flags)
    lines = err.splitlines()
    assert code == 2 and stdout == "" and len(lines) == 1 and lines[0].startswith(f"fixtrace: error: {message}"), err


def test_cli_preset_and_preset_file_exclude_each_other(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["layers", str(MODEL), "--preset", "tf", "--preset-file", "x.json"])
    assert exit_.value.code == 2 and "not allowed with argument" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["layers", str(MODEL), "--bgr", "--rgb"])


def test_cli_layers_takes_the_preset_size(tmp_path, capsys):
    """A model whose spatial size is symbolic is listed at the preset's default size."""
    model = onnx.load(MODEL)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    onnx.save(model, tmp_path / "any_size.onnx")
    file = tmp_path / "small.json"
    file.write_text('{"default_size": 96}')
    code, stdout, _ = cli(capsys, "layers", tmp_path / "any_size.onnx", "--preset-file", file)
    assert code == 0 and "1x1280x3x3" in stdout  # 96 / 32
    code, stdout, _ = cli(capsys, "layers", tmp_path / "any_size.onnx", "--preset-file", file, "--crop", "0.5")
    assert code == 0 and "1x1280x3x3" in stdout
    code, stdout, _ = cli(capsys, "layers", tmp_path / "any_size.onnx")
    assert code == 0 and "1x1280x7x7" in stdout  # imagenet's 224
