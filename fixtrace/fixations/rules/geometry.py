"""Window attributes (strides, pads, dilations, auto_pad) and index maps shared by rules."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fixtrace.model.layer_graph import Node


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


def window(node: Node, kernel: tuple[int, int], in_hw: tuple[int, int], out_hw: tuple[int, int]) -> Window:
    """Resolve a Conv/Pool node's window, auto_pad included.

    Args:
        node: the Conv, MaxPool or AveragePool node.
        kernel: kernel height and width.
        in_hw: input spatial size.
        out_hw: output spatial size.
    """
    strides = np.asarray(node.attr("strides", [1, 1]), dtype=np.int64)
    dilations = np.asarray(node.attr("dilations", [1, 1]), dtype=np.int64)
    auto_pad = node.attr("auto_pad", "NOTSET")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        begin = []
        for k, s, d, i, o in zip(kernel, strides, dilations, in_hw, out_hw):
            total = max((o - 1) * int(s) + (k - 1) * int(d) + 1 - i, 0)
            begin.append(total // 2 if auto_pad == "SAME_UPPER" else total - total // 2)
        pads = np.asarray(begin, dtype=np.int64)
    elif auto_pad == "VALID":
        pads = np.zeros(2, dtype=np.int64)
    else:
        pads = np.asarray(node.attr("pads", [0, 0, 0, 0])[:2], dtype=np.int64)
    return Window(np.asarray(kernel, dtype=np.int64), strides, pads, dilations)


def broadcast_index(index: np.ndarray, out_shape: tuple[int, ...], in_shape: tuple[int, ...]) -> np.ndarray:
    """Map flat indices of a broadcast result to the flat indices of one operand.

    Args:
        index: flat indices into a tensor of ``out_shape``.
        out_shape: the broadcast result's shape.
        in_shape: the operand's shape (numpy broadcasting rules).
    """
    if tuple(in_shape) == tuple(out_shape):
        return index
    padded = (1,) * (len(out_shape) - len(in_shape)) + tuple(in_shape)
    coords = np.unravel_index(index, out_shape)
    kept = [c if n != 1 else np.zeros_like(c) for c, n in zip(coords, padded)]
    return np.ravel_multi_index(kept, padded).astype(np.int64)
