"""Gradient walks run by onnxruntime (``Explainer(backward="onnx")``, the rules' ONNX form fed the
forward's kept tensors) against the numpy walk, on the bundled models; ``auto``'s choice and its
fallback to numpy where an op has no ONNX form."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper
from test_rules_oracle import _w, build

from conftest import ROOT, run_cli
from fixtrace import Explainer
from fixtrace.errors import OptionError, UnsupportedOpError

MOBILENET_METHODS = (
    "gradcam,gradcam++,layercam,xgradcam,saliency,guided-backprop,deconvnet,guided-gradcam,gradcam:ge,"
    "integrated-gradients:steps=3,smoothgrad:samples=3"
)
FASHION = ROOT / "models" / "fashion"


def _maps(model, methods: str, photo, backward: str, **options) -> dict:
    found = Explainer(model, method=methods, backward=backward, device="cpu", **options).explain(photo, top_k=2)
    return {label: explanations for label, explanations in found.items()}


def _assert_same(numpy_walk: dict, onnx_walk: dict) -> None:
    for label, explanations in numpy_walk.items():
        for want, got in zip(explanations, onnx_walk[label]):
            assert got.target.index == want.target.index
            scale = float(np.abs(want.input_map).max())
            assert scale > 0, label
            np.testing.assert_allclose(got.input_map, want.input_map, atol=1e-5 * scale, rtol=0, err_msg=label)
            assert want.settings["backward"] == "numpy" and got.settings["backward"] == "onnx", label


def test_onnx_walks_equal_numpy_walks_on_mobilenet(mobilenet_path, chelsea_path):
    """Every gradient method whose walk runs on the run's own tensors, two classes each."""
    _assert_same(
        _maps(mobilenet_path, MOBILENET_METHODS, chelsea_path, "numpy"),
        _maps(mobilenet_path, MOBILENET_METHODS, chelsea_path, "onnx"),
    )


@pytest.mark.parametrize("name", ["resnet", "inception", "vgg"])
def test_onnx_walks_equal_numpy_walks_on_the_fashion_models(name):
    model, photo = FASHION / f"{name}.onnx", FASHION / "samples" / "00003.png"
    methods = "gradcam,saliency,guided-backprop"
    _assert_same(_maps(model, methods, photo, "numpy", preset="raw"), _maps(model, methods, photo, "onnx", preset="raw"))


def test_auto_runs_the_walks_to_the_input_in_onnxruntime_and_leaves_the_rest(mobilenet_path, chelsea_path):
    found = Explainer(mobilenet_path, method="gradcam,saliency,fixations,integrated-gradients:steps=2", device="cpu").explain(
        chelsea_path
    )
    assert found["saliency"].settings["backward"] == "onnx"
    assert found["gradcam"].settings["backward"] == "numpy"  # a walk of about 1 ms: numpy was the faster
    assert found["integrated-gradients:steps=2"].settings["backward"] == "onnx"  # walks on its copies' forward
    assert "backward" not in found["fixations"].settings  # no gradient walk


def _lrn_model():
    """Conv -> LRN -> global pool -> Gemm: LRN has a numpy gradient rule but no ONNX form."""
    rng = np.random.default_rng(4)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("LRN", ["c"], ["l"], size=3),
        helper.make_node("GlobalAveragePool", ["l"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "fc"], ["y"], transB=1),
    ]
    return build(nodes, ["N", 3, 16, 16], ["y"], {"w": _w(rng, 4, 3, 3, 3), "fc": _w(rng, 5, 4)})


def test_auto_falls_back_to_numpy_where_an_op_has_no_onnx_form_and_onnx_names_it():
    photo = np.random.default_rng(5).uniform(0, 255, (16, 16, 3)).astype(np.uint8)
    e = Explainer(_lrn_model(), method="saliency", preset="raw", device="cpu").explain(photo)
    assert e.settings["backward"] == "numpy" and e.input_map.max() > 0
    with pytest.raises(UnsupportedOpError, match="LRN"):
        Explainer(_lrn_model(), method="saliency", preset="raw", device="cpu", backward="onnx")


def test_a_bad_backward_is_refused_in_one_line(mobilenet_path, chelsea_path, tmp_path):
    with pytest.raises(OptionError, match="backward"):
        Explainer(mobilenet_path, method="gradcam", backward="torch")
    done = run_cli("explain", str(mobilenet_path), str(chelsea_path), "--method", "gradcam", "--backward", "torch", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr and "--backward" in done.stderr
    done = run_cli(
        "explain",
        str(mobilenet_path),
        str(chelsea_path),
        "--method",
        "saliency",
        "--backward",
        "numpy",
        "--out",
        "o",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
