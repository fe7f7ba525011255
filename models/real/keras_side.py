"""Keras as the oracle: its forward, every 4-D layer output and Grad-CAM with tf.GradientTape."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from real.common import gradcam_from


def import_tensorflow() -> Any:
    """tensorflow, imported with oneDNN's custom ops off and its C++ logging quiet (both only when
    not set already, and only effective before TensorFlow's first import). oneDNN's ops have crashed
    GradientTape on some builds; with TF 2.21 both real Keras models here gave the same Grad-CAM
    with TF_ENABLE_ONEDNN_OPTS=1 too, so this is a guard, not a fix."""
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return tf


class KerasOracle:
    """A functional Keras model seen through the layers fixtrace may read.

    Args:
        model: the Keras model (NHWC input, the ONNX export's input layout).
        logit_layer: the layer whose output is the class scores before the softmax.
    """

    def __init__(self, model: Any, logit_layer: str) -> None:
        import keras

        self.tf = import_tensorflow()
        spatial = [layer for layer in model.layers[1:] if len(layer.output.shape) == 4]
        self.names = [layer.name for layer in spatial]
        self.logit_layer = logit_layer
        outputs = [layer.output for layer in spatial] + [model.get_layer(logit_layer).output]
        self.tap = keras.Model(model.inputs, outputs)

    def logits(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.tap(batch, training=False)[-1])

    def activations(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        values = self.tap(batch, training=False)[:-1]
        return {name: np.asarray(v).transpose(0, 3, 1, 2) for name, v in zip(self.names, values)}

    def gradcam(self, batch: np.ndarray, layer: str, targets: list[int]) -> np.ndarray:
        tf = self.tf
        index = self.names.index(layer)
        x = tf.constant(batch)
        with tf.GradientTape() as tape:
            outputs = self.tap(x, training=False)
            feature, logits = outputs[index], outputs[-1]
            score = tf.reduce_sum(logits * tf.one_hot(targets, logits.shape[-1]))
        grads = tape.gradient(score, feature)
        to_nchw = (0, 3, 1, 2)
        return gradcam_from(np.asarray(feature).transpose(to_nchw), np.asarray(grads).transpose(to_nchw))
