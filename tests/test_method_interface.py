"""The one method interface: methods share one forward, a new method is one registered class,
specs and ``--method all`` behave, and results do not depend on which methods ran together."""

from __future__ import annotations

import json

import numpy as np
import pytest

import fixtrace
from conftest import IMAGES, MODELS, run_cli
from fixtrace import Explainer, OptionError
from fixtrace.methods import METHODS, Maps, Method, method_names, register
from fixtrace.methods.spec import parse_spec, parse_specs
from fixtrace.runtime.session import Session

CHELSEA = IMAGES / "chelsea.jpg"
MODEL = MODELS / "mobilenet_v2.onnx"


@pytest.fixture(scope="module")
def explainer():
    return Explainer(MODEL, device="cpu")


def test_several_methods_run_one_forward(explainer, monkeypatch):
    calls = []
    original = Session.run

    def counted(self, tensor):
        calls.append(tensor.shape)
        return original(self, tensor)

    asked = ["fixations", "saliency", "gradcam", "cam:ge"]
    explainer.explain(CHELSEA, methods=asked)  # prepares them: one probe on a blank image each
    monkeypatch.setattr(Session, "run", counted)
    found = explainer.explain(CHELSEA, methods=asked)
    assert list(found) == ["fixations", "saliency", "gradcam", "cam:ge"]
    assert calls == [(1, 3, 224, 224)]  # one forward, whatever the number of methods
    assert {e.target.index for e in found.values()} == {285}
    assert found["fixations"].has_points and not found["gradcam"].has_points
    assert found["cam:ge"].settings["gradual_extrapolation"] and found["cam:ge"].method == "cam:ge"


def test_results_do_not_depend_on_the_company(explainer):
    together = explainer.explain(CHELSEA, methods="fixations,gradcam")
    for label, e in together.items():
        alone = Explainer(MODEL, device="cpu", method=label).explain(CHELSEA)
        # onnxruntime fuses differently when it returns other intermediates: last-bit differences only
        np.testing.assert_allclose(e.input_map, alone.input_map, rtol=1e-5, atol=1e-6 * float(alone.input_map.max()))
        np.testing.assert_allclose(e.heatmap, alone.heatmap, rtol=1e-5, atol=1e-5)
        assert e.box == alone.box


def test_a_new_method_is_one_registered_class(explainer):
    @register
    class Centre(Method):
        """A toy: the distance to the input's centre, whatever the photo."""

        name = "toy-centre"
        summary = "a toy"

        def explain(self, run, targets):
            rows, cols = np.indices(run.grid)
            centre = 1000.0 - np.hypot(rows - run.grid[0] / 2, cols - run.grid[1] / 2)
            return Maps(np.repeat(centre[None], run.size, axis=0).astype(np.float32))

    try:
        assert "toy-centre" in method_names()
        e = explainer.explain(CHELSEA, method="toy-centre")
        assert e.method == "toy-centre" and e.input_map.shape == (224, 224)
        y, x = np.unravel_index(np.argmax(e.heatmap), e.heatmap.shape)
        assert abs(x - e.heatmap.shape[1] / 2) < 3 and abs(y - e.heatmap.shape[0] / 2) < 3
    finally:
        del METHODS["toy-centre"]
    assert "toy-centre" not in method_names()


def test_specs_parse_and_refuse():
    assert parse_spec("GradCAM:ge").label == "gradcam:ge"
    assert parse_spec("fixations:conv_location=centre").params == (("conv_location", "centre"),)
    assert [s.name for s in parse_specs("all")] == method_names()
    with pytest.raises(OptionError, match="method saliency takes no option 'patch=3'"):
        parse_spec("saliency:patch=3")
    with pytest.raises(OptionError, match="method gradcam is asked for twice"):
        parse_specs("gradcam,GradCAM")
    with pytest.raises(OptionError, match="unknown method 'lime'"):
        parse_specs(["lime"])
    with pytest.raises(OptionError, match="Gradual Extrapolation sharpens coarse maps"):
        Explainer(MODEL, method="saliency:ge", device="cpu")


def test_cli_several_methods_write_a_folder_each_and_a_grid(tmp_path):
    out = tmp_path / "out"
    assert run_cli("explain", MODEL, CHELSEA, "--out", out, cwd=tmp_path).returncode == 0  # an earlier run's files ...
    proc = run_cli("explain", MODEL, CHELSEA, "--out", out, "--method", "fixations,gradcam:ge,saliency", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    folder = out / "chelsea"
    # ... are replaced, not mixed with these
    assert sorted(p.name for p in folder.iterdir()) == ["fixations", "gradcam_ge", "grid.png", "saliency"]
    for name in ("fixations", "gradcam_ge", "saliency"):
        record = json.loads((folder / name / "explanation.json").read_text())
        assert record["target"]["index"] == 285 and ("points" in record) == (name == "fixations")
    summary = json.loads((out / "summary.json").read_text())
    assert summary[0]["methods"] == ["fixations", "gradcam:ge", "saliency"]
    assert "side by side:" in proc.stdout


def test_all_leaves_out_what_the_model_cannot_run():
    """A conv -> flatten -> fully connected head has no global pool and an 8x8 input is smaller than
    occlusion's default 16-pixel patch: ``all`` leaves both out, says why, and keeps the rest."""
    from onnx import helper
    from test_rules_oracle import _w, build

    x = _w(np.random.default_rng(0), 1, 3, 8, 8)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Flatten", ["r"], ["f"]),
        helper.make_node("Gemm", ["f", "fc"], ["y"], transB=1),
    ]
    weights = {"w": _w(np.random.default_rng(1), 4, 3, 3, 3), "fc": _w(np.random.default_rng(2), 5, 144)}
    explainer = Explainer(build(nodes, x.shape, ["y"], weights), method="all", preset="raw", device="cpu")
    assert list(explainer.skipped) == ["cam", "occlusion"] and "global average pool" in explainer.skipped["cam"]
    assert "patch" in explainer.skipped["occlusion"]
    assert [s.label for s in explainer.specs] == [n for n in method_names() if n not in explainer.skipped]
    found = explainer.explain(x[0].transpose(1, 2, 0), methods=["fixations", "gradcam", "occlusion:patch=4:stride=4"])
    assert {e.input_map.shape for e in found.values()} == {(8, 8)}


def test_methods_that_run_the_model_need_no_rules(tmp_path):
    """An op without any rule (Sin) stops the walks, not occlusion, RISE or Score-CAM; `info` says which run."""
    from onnx import helper
    from test_rules_oracle import _w, build

    x = _w(np.random.default_rng(0), 1, 3, 16, 16)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Sin", ["c"], ["s"]),
        helper.make_node("GlobalAveragePool", ["s"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "fc"], ["y"], transB=1),
    ]
    weights = {"w": _w(np.random.default_rng(1), 4, 3, 3, 3), "fc": _w(np.random.default_rng(2), 5, 4)}
    model = build(nodes, x.shape, ["y"], weights)
    with pytest.raises(fixtrace.UnsupportedOpError, match="unsupported op 'Sin' at node"):
        Explainer(model, preset="raw", device="cpu")
    explainer = Explainer(model, preset="raw", device="cpu", method="occlusion:patch=4:stride=2,rise:masks=64,scorecam")
    found = explainer.explain(x[0].transpose(1, 2, 0))
    assert list(found) == ["occlusion:patch=4:stride=2", "rise:masks=64", "scorecam"]
    assert all(np.isfinite(e.input_map).all() and e.input_map.shape == (16, 16) for e in found.values())
    path = tmp_path / "sin.onnx"
    path.write_bytes(model.SerializeToString())
    proc = run_cli("info", path, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = {line.split()[0]: line for line in proc.stdout.splitlines() if line.startswith("  ")}
    assert lines["saliency"].endswith("cannot run: unsupported op 'Sin' at node 's'")
    assert lines["occlusion"].endswith("runs on this model") and lines["rise"].endswith("runs on this model")
