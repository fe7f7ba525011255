"""fixtrace never imports a training framework: `import fixtrace` and whole CLI runs, in a fresh
interpreter, leave torch, tensorflow, keras, jax and flax out of sys.modules (even where they are
installed, as in CI's torch step)."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import IMAGES, MODELS

FRAMEWORKS = ("torch", "tensorflow", "keras", "jax", "flax", "paddle")

SCRIPT = """
import json, sys
import fixtrace
from fixtrace.cli import main
codes = [main(arg) for arg in json.loads(sys.argv[1])]
loaded = sorted({name.split(".")[0] for name in sys.modules} & set(json.loads(sys.argv[2])))
print(json.dumps({"codes": codes, "loaded": loaded}))
"""


def test_import_and_cli_runs_load_no_framework(tmp_path):
    model, photo = str(MODELS / "mobilenet_v2.onnx"), str(IMAGES / "chelsea.jpg")
    runs = [
        ["info", model],
        [
            "explain",
            model,
            photo,
            "--out",
            str(tmp_path / "out"),
            "--quiet",
            "--method",
            "fixations,gradcam:ge,saliency,occlusion:patch=56:stride=56,rise:masks=8,scorecam:layer="
            "/features/features.1/conv/conv.1/Conv_output_0",
        ],
    ]
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(runs), json.dumps(FRAMEWORKS)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"codes": [0, 0], "loaded": []}
