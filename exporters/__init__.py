"""Export PyTorch, Keras/TensorFlow and JAX/Flax image classifiers to ONNX files fixtrace explains,
with the preprocessing preset, the input layout and the class names in the file's metadata.

Each exporter imports its framework when called, so importing this package needs none of them.
"""

from exporters.jax_export import export_jax
from exporters.keras_export import export_keras
from exporters.metadata import LABELS_KEY, finish
from exporters.torch_export import export_torch

__all__ = ["LABELS_KEY", "export_jax", "export_keras", "export_torch", "finish"]
