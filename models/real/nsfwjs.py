"""nsfwjs's MobileNetV2 (npm ``nsfwjs`` 4.4.0, MIT): a TF.js layers model (Keras 2.2.4 topology,
uint8-quantised weights, both wrapped in UMD JavaScript modules) read with node, rebuilt in Keras 3
and exported by tf2onnx. 224 x 224 RGB in [0, 1] (fixtrace's ``raw`` preset: nsfwjs resizes
bilinearly and divides by 255); 5 classes; natural photos (the astronaut) come out Neutral."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from real.common import MissingPackage, RealModel, require

LABELS = ["Drawing", "Hentai", "Neutral", "Porn", "Sexy"]
PRESET = "raw"
VARIANT = "mobilenet_v2"
INSTALL = "npm install nsfwjs@4.4.0 (global or here), or set NSFWJS_DIR to the unpacked package"
#: node: print the model's topology and weights manifest as JSON, and write the weight shards, in the
#: manifest's order, to one binary file (argv: model folder, output file).
DUMP_JS = """
const path = require("path"), fs = require("fs");
const dir = process.argv[1], out = process.argv[2];
const model = require(path.join(dir, "model.min.js"));
const shards = model.weightsManifest.flatMap(group => group.paths);
fs.writeFileSync(out, Buffer.concat(shards.map(p => Buffer.from(require(path.join(dir, p + ".min.js")), "base64"))));
process.stdout.write(JSON.stringify({modelTopology: model.modelTopology, weightsManifest: model.weightsManifest}));
"""


def package_dir() -> Path:
    """The unpacked nsfwjs npm package.

    Raises:
        MissingPackage: neither NSFWJS_DIR, ./node_modules/nsfwjs nor the global npm root has it, or
            node is missing.
    """
    if shutil.which("node") is None:
        raise MissingPackage(f"node is not installed (apt-get install nodejs; then {INSTALL})")
    candidates = [Path(os.environ["NSFWJS_DIR"])] if os.environ.get("NSFWJS_DIR") else []
    candidates.append(Path("node_modules") / "nsfwjs")
    if shutil.which("npm"):
        root = subprocess.run(["npm", "root", "-g"], capture_output=True, text=True, timeout=60).stdout.strip()
        candidates.append(Path(root) / "nsfwjs")
    for candidate in candidates:
        if (candidate / "dist" / "models" / VARIANT / "model.min.js").is_file():
            return candidate.resolve()
    raise MissingPackage(f"nsfwjs is not installed ({INSTALL})")


def read_tfjs(model_dir: Path, cache: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The Keras topology and the dequantised weights (min + scale * q) by TF.js name."""
    shards = cache / f"nsfwjs_{VARIANT}.weights.bin"
    dumped = subprocess.run(
        ["node", "-e", DUMP_JS, str(model_dir), str(shards)], capture_output=True, text=True, check=True, timeout=300
    )
    model = json.loads(dumped.stdout)
    raw, offset, weights = shards.read_bytes(), 0, {}
    for entry in (w for group in model["weightsManifest"] for w in group["weights"]):
        quantised = entry.get("quantization")
        dtype = np.dtype(quantised["dtype"] if quantised else entry["dtype"])
        count = int(np.prod(entry["shape"]))
        values = np.frombuffer(raw, dtype, count, offset).astype(np.float32)
        offset += count * dtype.itemsize
        if quantised:
            values = values * np.float32(quantised["scale"]) + np.float32(quantised["min"])
        weights[entry["name"]] = values.reshape(entry["shape"])
    if offset != len(raw):
        raise ValueError(f"the weights manifest covers {offset} bytes of {len(raw)}")
    return model["modelTopology"]["model_config"]["config"], weights


def keras_model(config: dict[str, Any], weights: dict[str, np.ndarray], softmax: bool) -> Any:
    """Keras 3 rebuilt from the Keras 2 config; ``softmax=False`` leaves the last Dense linear (the
    logits the oracle differentiates)."""
    import keras

    config = json.loads(json.dumps(config))
    for layer in config["layers"]:
        if "batch_input_shape" in layer["config"]:
            layer["config"]["batch_shape"] = layer["config"].pop("batch_input_shape")
    if not softmax:
        config["layers"][-1]["config"]["activation"] = "linear"
    model = keras.Model.from_config(config)
    for layer in model.layers:
        if layer.weights:
            # Keras 3 names a depthwise conv's kernel "kernel"; Keras 2 (and TF.js) "depthwise_kernel".
            names = [f"{layer.name}/{v.name}" for v in layer.weights]
            layer.set_weights([weights[n] if n in weights else weights[n.replace("/", "/depthwise_")] for n in names])
    return model


def build(cache: Path) -> RealModel:
    """Rebuild nsfwjs's MobileNetV2 in Keras and export it to ``cache/nsfwjs_mobilenet_v2.onnx``.

    Raises:
        MissingPackage: node, nsfwjs, tensorflow, keras, tf2onnx or scikit-image is missing.
    """
    model_dir = package_dir() / "dist" / "models" / VARIANT
    require("tensorflow", "keras", "tf2onnx", install="pip install tensorflow-cpu tf2onnx")
    require("skimage", install="pip install scikit-image")
    from real.keras_side import KerasOracle, import_tensorflow

    import_tensorflow()
    from skimage import data

    from exporters import export_keras

    config, weights = read_tfjs(model_dir, Path(cache))
    path = Path(cache) / f"nsfwjs_{VARIANT}.onnx"
    export_keras(keras_model(config, weights, softmax=True), path, preset=PRESET, labels=LABELS, via="tf2onnx")
    logits = keras_model(config, weights, softmax=False)
    oracle = KerasOracle(logits, logits.layers[-1].name)
    return RealModel(
        name=f"nsfwjs-{VARIANT.replace('_', '')}",
        path=path,
        exporter="TF.js layers (node) -> Keras 3 -> tf2onnx (export_keras)",
        preset=PRESET,
        photo=data.astronaut(),
        expected=LABELS.index("Neutral"),
        labels=LABELS,
        logits=oracle.logits,
        activations=oracle.activations,
        gradcam=oracle.gradcam,
    )
