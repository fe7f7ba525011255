"""JAX / Flax to ONNX through jax2onnx: a symbolic batch, fixtrace's metadata."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from exporters.metadata import finish

#: jax2onnx's own default, the newest opset fixtrace reads.
DEFAULT_OPSET = 23


def export_jax(
    fn: Callable[[Any], Any],
    example: Any,
    path: str | os.PathLike,
    *,
    preset: Any = None,
    labels: Sequence[str] | None = None,
    opset: int | None = None,
    input_name: str = "input",
) -> Path:
    """Export a JAX image classifier (N, H, W, C) -> (N, classes) to one ONNX file (output ``logits``).

    Args:
        fn: images -> logits with the parameters closed over, or a Flax nnx module.
        example: an example input (anything with ``.shape``, e.g. ``np.zeros((1, 64, 64, 3))``);
            its batch dim is exported as the symbolic ``N``, the rest as given (float32).
        path: the ``.onnx`` file to write.
        preset: fixtrace preprocessing (a Preset or a preset name) written into the file.
        labels: class names written into the file.
        opset: ONNX opset (default 23).
        input_name: the graph's input name.

    Returns:
        The written path.

    Raises:
        ValueError: the example is not rank 4, or metadata that does not fit.
    """
    from jax2onnx import to_onnx

    path = Path(path)
    shape = tuple(int(d) for d in example.shape)
    if len(shape) != 4:
        raise ValueError(f"the example input has shape {shape}; export needs an image batch (N, H, W, C)")
    to_onnx(
        fn,
        [("N", *shape[1:])],
        opset=opset or DEFAULT_OPSET,
        input_names=[input_name],
        output_names=["logits"],
        return_mode="file",
        output_path=str(path),
    )
    return finish(path, layout="NHWC", preset=preset, labels=labels)
