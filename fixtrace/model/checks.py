"""Checks of a model's weights and sizes that refuse it before anything runs."""

from __future__ import annotations

import numpy as np

from fixtrace.errors import ModelError
from fixtrace.ops import ops_with

#: The largest tensor (for one image) fixtrace lets onnxruntime compute.
MAX_TENSOR_BYTES = 1 << 30


def check_weights(constants: dict[str, np.ndarray], nodes: list) -> None:
    """Refuse NaN in any float constant, and infinities in the weights of ops with the ``weighted``
    trait (an infinity there is a broken model).

    Args:
        constants: the model's constant tensors.
        nodes: the model's nodes (``op_type``, ``inputs``, ``name``).

    Raises:
        ModelError: naming the tensor and the count of bad values.
    """
    weighted = ops_with("weighted")
    weights = {t for n in nodes if n.op_type in weighted for t in n.inputs[1:]}
    for name, value in constants.items():
        if not isinstance(value, np.ndarray) or value.dtype.kind not in "fc" or value.size == 0:
            continue
        nan = int(np.isnan(value).sum())
        if nan:
            raise ModelError(
                f"weight tensor {name!r} holds {nan} NaN value{'s' * (nan > 1)}: the model is broken "
                "(a failed training run or a corrupt file)"
            )
        if name in weights and not np.isfinite(value).all():
            count = int(np.isinf(value).sum())
            raise ModelError(f"weight tensor {name!r} holds {count} infinite value{'s' * (count > 1)}: the model is broken")


def check_windows(nodes: list) -> None:
    """Refuse ops with the ``windowed`` trait whose strides, dilations or kernel shape are not positive
    (onnx 1.15's shape inference divides by them in C++ and kills the process on a 0).

    Raises:
        ModelError: naming the node and the attribute.
    """
    windowed = ops_with("windowed")
    for node in nodes:
        if node.op_type not in windowed:
            continue
        for key in ("strides", "dilations", "kernel_shape"):
            values = node.attr(key)
            if values is not None and any(int(v) < 1 for v in values):
                raise ModelError(f"node {node.name!r} ({node.op_type}) has {key} {list(values)}: they must be positive")


def check_tensor_sizes(shapes: dict[str, tuple[int, ...]], producer: dict) -> None:
    """Refuse a model one of whose tensors would exceed MAX_TENSOR_BYTES for one image.

    Args:
        shapes: tensor shapes for a batch of one.
        producer: tensor name -> the node writing it.

    Raises:
        ModelError: naming the tensor, its node, its shape and size.
    """
    for name, shape in shapes.items():
        size = 4 * int(np.prod(shape, dtype=np.float64))
        if size > MAX_TENSOR_BYTES and name in producer:
            node = producer[name]
            raise ModelError(
                f"tensor {name!r} of node {node.name!r} ({node.op_type}) would be {'x'.join(map(str, shape))} "
                f"({size / 1e9:.1f} GB per image); fixtrace refuses tensors over {MAX_TENSOR_BYTES / 1e9:.1f} GB: "
                "are the model's pads or kernels absurd?"
            )


def check_image_channels(graph) -> None:
    """Refuse a model whose input is not a grey (1 channel) or colour (3 channel) image.

    The channels are the input's declared ones, else those of a Conv reading it directly.

    Raises:
        ModelError: naming the input, its shape, the layout read and the channel count.
    """
    spec = graph.image_input
    channels = spec.channels
    if channels is None:
        conv = next(
            (
                n
                for n in graph.consumers.get(spec.name, [])
                if n.op_type == "Conv"
                and len(n.inputs) > 1
                and n.inputs[1] in graph.constants
                and graph.constants[n.inputs[1]].ndim >= 2
            ),
            None,
        )
        channels = None if conv is None else int(graph.constants[conv.inputs[1]].shape[1]) * int(conv.attr("group", 1))
    if channels is not None and channels not in (1, 3):
        shape = "x".join("?" if d is None else str(d) for d in spec.shape)
        raise ModelError(
            f"input {spec.name!r} ({shape}, read as {spec.layout}) has {channels} channels; fixtrace explains "
            "grey (1 channel) or colour (3 channel) images"
        )
