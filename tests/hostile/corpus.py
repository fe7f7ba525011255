"""The corpus: every group's cases, its input files, and where each case runs."""

from __future__ import annotations

import importlib
from pathlib import Path

from hostile.case import Case, Context

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"
MOBILENET = MODELS / "mobilenet_v2.onnx"
FASHION = MODELS / "fashion"
CHELSEA = MODELS / "images" / "chelsea.jpg"
COFFEE = MODELS / "images" / "coffee.jpg"
CAMERA = MODELS / "images" / "camera.jpg"
#: The trained Fashion ResNet and its sample dataset (images with boxes.csv).
RESNET = str(FASHION / "resnet.onnx")
SAMPLES = FASHION / "samples"

#: One module per group, in the order the report lists them.
GROUPS = ("model_files", "graphs", "external_data", "images", "file_names", "arguments", "datasets", "batches", "api")


def evaluate_args(dataset: str, *extra: str, perturbation: int = 1) -> tuple[str, ...]:
    """``fixtrace evaluate`` of the Fashion ResNet on ``dataset``, kept small (Grad-CAM, short curves)."""
    quick = ("--preset", "raw", "--methods", "gradcam", "--perturbation", str(perturbation), "--steps", "4")
    return ("evaluate", RESNET, dataset, "--out", "{out}", *quick, *extra)


def group_module(name: str):
    return importlib.import_module(f"hostile.groups.{name}")


def all_cases() -> list[Case]:
    """Every case of every group (building no file)."""
    cases = [case for name in GROUPS for case in group_module(name).cases()]
    ids = [c.id for c in cases]
    duplicated = {i for i in ids if ids.count(i) > 1}
    if duplicated:
        raise ValueError(f"duplicate case ids: {sorted(duplicated)}")
    return cases


def build(root: Path) -> None:
    """Write every group's input files under ``root/inputs`` (and the secrets next to it)."""
    secrets = root / "secrets"
    secrets.mkdir(parents=True, exist_ok=True)
    (secrets / "secret.bin").write_bytes(b"SECRET-" * 4096)
    (secrets / "secret.txt").write_text("top secret\n")
    (secrets / "photo.png").write_bytes(CHELSEA.read_bytes())
    for name in GROUPS:
        folder = root / "inputs" / name
        folder.mkdir(parents=True, exist_ok=True)
        group_module(name).build(folder)


def context_for(root: Path, case_id: str) -> Context:
    """The folders of one case: its own run folder, and ``out`` inside it."""
    run = root / "runs" / case_id.replace("/", "__")
    return Context(inputs=root / "inputs", run=run, out=run / "out")
