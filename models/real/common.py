"""What every real-model builder returns: the ONNX file and its source framework's oracles."""

from __future__ import annotations

import importlib.util
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx


class MissingPackage(RuntimeError):
    """A package the builder needs is not installed (tests skip with this message)."""


def package_path(package: str, relative: str = "", install: str = "") -> Path:
    """A file (or the folder) of an installed package, without importing it.

    Raises:
        MissingPackage: the package or the file is absent; ``install`` says how to get it.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingPackage(f"package {package!r} is not installed ({install or f'pip install {package}'})")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.exists():
        raise MissingPackage(f"{relative} is not in the installed {package!r}")
    return path


def require(*modules: str, install: str = "") -> None:
    """Raise MissingPackage unless every module can be imported."""
    for module in modules:
        if importlib.util.find_spec(module) is None:
            raise MissingPackage(f"module {module!r} is not installed ({install or f'pip install {module}'})")


def op_counts(path: Path) -> dict[str, int]:
    """Node count per op type of an ONNX file (its weights are not read)."""
    model = onnx.load(str(path), load_external_data=False)
    return dict(Counter(node.op_type for node in model.graph.node).most_common())


@dataclass
class RealModel:
    """A model exported to ONNX, with its source framework's view of the same weights.

    Attributes:
        name: short name (the test id).
        path: the ONNX file.
        exporter: how it was exported, for people.
        preset: fixtrace preprocessing preset name (also written into the model's metadata).
        photo: uint8 (H, W, 3) real photo the model is checked on.
        expected: the class the photo is known to be (None: any), as an index.
        labels: class names.
        logits: framework forward: a batch in the ONNX input's layout -> (N, classes) class scores
            before any softmax (the tensor fixtrace explains).
        activations: framework forward -> every 4-D intermediate as (N, C, H, W), by layer name
            (the candidates for "the same layer" as fixtrace's Grad-CAM layer).
        gradcam: (batch, layer name, targets) -> (N, h, w) Grad-CAM computed by the framework's
            autodiff on that layer.
        notes: anything the builder found worth reporting (timings, environment switches).
    """

    name: str
    path: Path
    exporter: str
    preset: str
    photo: np.ndarray
    expected: int | None
    labels: list[str]
    logits: Callable[[np.ndarray], np.ndarray]
    activations: Callable[[np.ndarray], dict[str, np.ndarray]]
    gradcam: Callable[[np.ndarray, str, list[int]], np.ndarray]
    notes: dict[str, object] = field(default_factory=dict)

    @property
    def ops(self) -> dict[str, int]:
        return op_counts(self.path)


def gradcam_from(activations: np.ndarray, grads: np.ndarray) -> np.ndarray:
    """ReLU(sum_k mean(dS/dA_k) A_k) for (N, C, H, W) activations and their gradients."""
    alpha = grads.mean(axis=(2, 3), keepdims=True)
    return np.maximum((alpha * activations).sum(axis=1), 0).astype(np.float32)
