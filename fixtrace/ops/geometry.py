"""Window attributes (strides, pads, dilations, auto_pad), the index-map tables and the inverse of
broadcasting, shared by the rules of several op families."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fixtrace.kernels.shared.index import AXIS_BROADCAST, AXIS_KEEP, REMAP_COLUMNS
from fixtrace.model.layer_graph import Node
from fixtrace.ops.attributes import attribute


@dataclass(frozen=True)
class Window:
    """A 2-D sliding window, pads resolved.

    Attributes:
        kernel, strides, dilations: int64 (2,) arrays.
        pads: int64 (top, left) array; only the leading pads matter for backtracking.
    """

    kernel: np.ndarray
    strides: np.ndarray
    pads: np.ndarray
    dilations: np.ndarray


def pool_kernel(node: Node) -> tuple[int, int] | None:
    """A 2-D pool's (kh, kw), or None when the node is not a 2-D pool."""
    kernel = node.attr("kernel_shape")
    return (int(kernel[0]), int(kernel[1])) if kernel is not None and len(kernel) == 2 else None


def window(
    node: Node, kernel: tuple[int, int], in_hw: tuple[int, int], out_hw: tuple[int, int], opset: int | None = None
) -> Window:
    """Resolve a Conv/Pool node's window, auto_pad included.

    Args:
        node: the Conv, MaxPool or AveragePool node.
        kernel: kernel height and width.
        in_hw: input spatial size.
        out_hw: output spatial size.
        opset: the model's opset (for the schema's defaults).
    """
    # The schema gives strides, dilations and pads no default value, only "1 (0) along each axis".
    strides = np.asarray(attribute(node, "strides", opset, [1, 1]), dtype=np.int64)
    dilations = np.asarray(attribute(node, "dilations", opset, [1, 1]), dtype=np.int64)
    auto_pad = attribute(node, "auto_pad", opset)
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        begin = []
        for k, s, d, i, o in zip(kernel, strides, dilations, in_hw, out_hw):
            total = max((o - 1) * int(s) + (k - 1) * int(d) + 1 - i, 0)
            begin.append(total // 2 if auto_pad == "SAME_UPPER" else total - total // 2)
        pads = np.asarray(begin, dtype=np.int64)
    elif auto_pad == "VALID":
        pads = np.zeros(2, dtype=np.int64)
    else:
        pads = np.asarray(attribute(node, "pads", opset, [0, 0, 0, 0])[:2], dtype=np.int64)
    return Window(np.asarray(kernel, dtype=np.int64), strides, pads, dilations)


def remap_table(
    out_shape: tuple[int, ...], in_shape: tuple[int, ...], source_axis: list[int], begin: list[int], modes: list[int]
) -> np.ndarray:
    """A table for the ``remap`` kernel (see ``kernels.shared.index.remap_one``).

    Args:
        out_shape: the output's shape.
        in_shape: the input's shape.
        source_axis: per output axis, the input axis it reads.
        begin: per output axis, the leading pad.
        modes: per output axis, an AXIS_* mode.
    """
    strides = [int(np.prod(in_shape[a + 1 :], dtype=np.int64)) for a in range(len(in_shape))]
    rows = [(out_shape[k], strides[a], begin[k], in_shape[a], modes[k]) for k, a in enumerate(source_axis)]
    return np.asarray(rows, dtype=np.int64).reshape(len(out_shape), REMAP_COLUMNS)


def broadcast_table(out_shape: tuple[int, ...], in_shape: tuple[int, ...]) -> np.ndarray:
    """The remap table from a broadcast result back to one operand (numpy broadcasting rules)."""
    padded = (1,) * (len(out_shape) - len(in_shape)) + tuple(in_shape)
    modes = [AXIS_BROADCAST if n == 1 and o != 1 else AXIS_KEEP for n, o in zip(padded, out_shape)]
    return remap_table(tuple(out_shape), padded, list(range(len(padded))), [0] * len(padded), modes)


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` down to ``shape`` (the inverse of numpy broadcasting)."""
    if grad.shape == tuple(shape):
        return grad
    lead = grad.ndim - len(shape)
    summed = grad.sum(axis=tuple(range(lead))) if lead else grad
    axes = tuple(k for k, n in enumerate(shape) if n == 1 and summed.shape[k] != 1)
    return (summed.sum(axis=axes, keepdims=True) if axes else summed).reshape(shape)
