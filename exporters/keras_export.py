"""Keras 3 / TensorFlow to ONNX: tf2onnx or Keras's own ``model.export(format="onnx")``, a dynamic
batch, fixtrace's metadata."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from exporters.metadata import finish

#: The ways to export: tf2onnx on a traced tf.function, or Keras's exporter (tf2onnx inside).
ROUTES = ("tf2onnx", "keras")
#: tf2onnx's default opset (it writes 7..18); fixtrace reads 7..22.
DEFAULT_OPSET = 15


def export_keras(
    model: Any,
    path: str | os.PathLike,
    *,
    preset: Any = None,
    labels: Sequence[str] | None = None,
    via: str = "tf2onnx",
    opset: int | None = None,
    input_name: str = "input",
) -> Path:
    """Export a Keras image classifier (N, H, W, C) -> (N, classes) to one ONNX file (output ``logits``).

    Args:
        model: a Keras 3 model (TensorFlow backend) with one image input; built for the user from
            ``model.input_shape`` when it has not been called yet.
        path: the ``.onnx`` file to write.
        preset: fixtrace preprocessing (a Preset or a preset name) written into the file.
        labels: class names written into the file.
        via: ``"tf2onnx"`` or ``"keras"`` (``model.export(path, format="onnx")``).
        opset: ONNX opset (default 15).
        input_name: the graph's input name.

    Returns:
        The written path.

    Raises:
        ValueError: an unknown route, a model with no known input shape or not one rank-4 input.
    """
    if via not in ROUTES:
        raise ValueError(f"via must be one of {', '.join(ROUTES)}, not {via!r}")
    import tensorflow as tf

    path = Path(path)
    opset = opset or DEFAULT_OPSET
    shape = _built_input_shape(model)
    spec = tf.TensorSpec((None, *shape[1:]), tf.float32, name=input_name)
    if via == "keras":
        model.export(str(path), format="onnx", input_signature=[spec], opset_version=opset, verbose=False)
    else:
        import tf2onnx
        from keras.src.export.tf2onnx_lib import patch_tf2onnx

        patch_tf2onnx()  # tf2onnx 1.17 still calls numpy 1 names that numpy 2 removed
        function = tf.function(lambda images: model(images, training=False), input_signature=[spec])
        tf2onnx.convert.from_function(function, input_signature=[spec], opset=opset, output_path=str(path))
    return finish(path, layout="NHWC", preset=preset, labels=labels, input_name=input_name, output_name="logits")


def _built_input_shape(model: Any) -> tuple[int | None, ...]:
    """The model's input shape (N, H, W, C), calling it once on zeros if it never ran.

    Raises:
        ValueError: the model declares no input shape, or not one rank-4 input.
    """
    import numpy as np

    try:
        shape = model.input_shape
    except (AttributeError, ValueError) as exc:
        raise ValueError(
            "the Keras model has no known input shape: give it an Input layer (keras.Input(shape=(H, W, C))) "
            "or call it once on an image batch before exporting"
        ) from exc
    if not isinstance(shape, tuple) or len(shape) != 4 or any(d is None for d in shape[1:]):
        raise ValueError(f"the Keras model's input shape is {shape}; export needs one image input (None, H, W, C)")
    if not getattr(model, "_called", True):
        model(np.zeros((1, *shape[1:]), np.float32), training=False)
    return tuple(shape)
