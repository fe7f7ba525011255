"""Both torch exporters' spellings of the same MobileNetV2 give the same explanation (slow: needs torch).

The legacy exporter writes GlobalAveragePool / Flatten at opset 13 (and opset 9 here, with
Clip's bounds as attributes); the dynamo exporter writes ReduceMean / Reshape at opset 18+
with a side .onnx.data file. fixtrace must accept all of them and agree with the bundled model.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import pytest

from conftest import IMAGES, MODELS

pytestmark = pytest.mark.slow

torch = pytest.importorskip("torch", reason="torch is needed to export the models (pip install torch==2.13.0)")


def export(model, path, dynamo: bool, opset: int) -> onnx.ModelProto:
    x = torch.zeros(1, 3, 224, 224)
    if dynamo:
        pytest.importorskip("onnxscript", reason="the dynamo exporter needs onnxscript")
        torch.onnx.export(model, (x,), str(path), dynamo=True, opset_version=opset, input_names=["input"])
    else:
        torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=opset, input_names=["input"])
    return onnx.load(str(path), load_external_data=False)


@pytest.mark.parametrize(
    "dynamo, opset, spelling",
    [
        (False, 9, {"GlobalAveragePool", "Flatten"}),
        (True, 18, {"ReduceMean", "Reshape"}),
    ],
)
def test_exporter_spellings_explain_like_the_bundled_model(torch_mobilenet, tmp_path, dynamo, opset, spelling):
    from fixtrace import Explainer

    path = tmp_path / "mobilenet.onnx"
    model = export(torch_mobilenet, path, dynamo, opset)
    ops = Counter(n.op_type for n in model.graph.node)
    assert spelling <= set(ops), ops
    bundled = Explainer(MODELS / "mobilenet_v2.onnx").explain(IMAGES / "chelsea.jpg")
    exported = Explainer(path).explain(IMAGES / "chelsea.jpg")
    assert exported.target.index == bundled.target.index == 285
    assert exported.target.logit == pytest.approx(bundled.target.logit, abs=1e-3)
    # Same weights, same rules: the fixations agree (float rounding of the folded BatchNorm may move a few).
    ours = {tuple(p) for p in np.round(exported.points).astype(int)}
    theirs = {tuple(p) for p in np.round(bundled.points).astype(int)}
    assert len(ours & theirs) >= 0.9 * max(len(ours), len(theirs))
