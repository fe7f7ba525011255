"""The receptive field of a feature map: which input pixels each of its cells can see, composed
from the windows (kernel, stride, dilation, pads) on every path from the image input.

A property of the graph, like its layouts (``model.layout``): it needs the graph and its shapes,
never a run. Element-wise ops pass a field on; ops with several computed inputs (Add, Mul, Concat)
take the union of their inputs' fields; ops that mix every position (global pools, reductions over
the rows and columns, Flatten, Gemm, reshapes) see the whole image."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import networkx as nx
import numpy as np

from fixtrace import ops
from fixtrace.errors import ModelError, OptionError, UnsupportedOpError
from fixtrace.model.layer_graph import LayerGraph, Node
from fixtrace.model.layout import LAYOUTS, feature_layouts, grid
from fixtrace.ops.attributes import attribute
from fixtrace.ops.geometry import pool_kernel, window
from fixtrace.ops.pool import resolve_axes

#: Sliding windows composed by their kernel, strides, dilations and pads.
_WINDOWED = ("Conv", "MaxPool", "AveragePool", "LpPool")
#: Ops that change no position, besides those the op modules declare ``spatial``.
_ELEMENTWISE = ("Identity", "Dropout", "LRN", "Cast", "Neg", "Abs", "Exp", "Log", "Sqrt", "Reciprocal", "Softsign")
#: Ops whose every output element reads every position of their input.
_WHOLE = (
    "GlobalAveragePool",
    "GlobalMaxPool",
    "GlobalLpPool",
    "Flatten",
    "Gemm",
    "MatMul",
    "Reshape",
    "Squeeze",
    "Unsqueeze",
    "Softmax",
    "LogSoftmax",
    "InstanceNormalization",
    "MeanVarianceNormalization",
)
_REDUCTIONS = ("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceL1", "ReduceL2", "ReduceProd", "ReduceLogSumExp")


@dataclass(frozen=True)
class ReceptiveField:
    """The input pixels the cells of one feature map see.

    Cell (i, j) sees the window centred at input pixel ``centre(i, j) = (offset[0] + i * stride[0],
    offset[1] + j * stride[1])``, ``size`` pixels tall and wide (its first row is ``centre - (size - 1) / 2``),
    clipped to the image. Zero padding is outside the image: the window reaches it only on paper.

    Attributes:
        size: (rows, cols) of the window before clipping (may exceed the image).
        stride: input pixels between the centres of neighbouring cells (the jump); (0, 0) when
            every cell sees the whole image.
        offset: (row, col) of cell (0, 0)'s centre in input pixels; a half pixel for even windows,
            negative where padding comes first.
        image: (rows, cols) of the model input.
        whole: every cell sees the whole image (a global pool, a gate computed from one, a dense layer).
    """

    size: tuple[int, int]
    stride: tuple[int, int]
    offset: tuple[float, float]
    image: tuple[int, int]
    whole: bool = False

    def centre(self, row: int, col: int) -> tuple[float, float]:
        """(row, col) in input pixels of the centre of cell (``row``, ``col``)'s window (not clipped)."""
        return self.offset[0] + row * self.stride[0], self.offset[1] + col * self.stride[1]

    def window(self, row: int, col: int) -> tuple[int, int, int, int]:
        """(top, left, bottom, right) of cell (``row``, ``col``)'s window in input pixels, clipped to
        the image; bottom and right exclusive, so that ``image[top:bottom, left:right]`` is what it sees."""
        if self.whole:
            return 0, 0, self.image[0], self.image[1]
        edges = []
        for centre, size, extent in zip(self.centre(row, col), self.size, self.image):
            first = round(centre - (size - 1) / 2)
            edges.append((min(max(first, 0), extent), min(max(first + size, 0), extent)))
        (top, bottom), (left, right) = edges
        return top, left, bottom, right


@dataclass(frozen=True)
class _Axis:
    """One spatial axis of a field: window size, jump, and the centre of cell 0 (input pixels)."""

    size: int
    jump: int
    centre: float

    @property
    def low(self) -> float:
        return self.centre - (self.size - 1) / 2

    @property
    def high(self) -> float:
        return self.centre + (self.size - 1) / 2


@dataclass(frozen=True)
class _Field:
    axes: tuple[_Axis, _Axis]
    whole: bool = False


def receptive_field(graph: LayerGraph, tensor: str, shapes: dict[str, tuple[int, ...]]) -> ReceptiveField:
    """The receptive field of the map ``tensor``.

    Args:
        graph: the layer graph.
        tensor: a tensor the graph computes from the image input.
        shapes: tensor name -> shape at one input size (``LayerGraph.shapes``), the input's included.

    Returns:
        The field of each of its cells.

    Raises:
        OptionError: ``tensor`` is not computed from the image input.
        UnsupportedOpError: an op on a path from the input has no receptive-field rule (named
            with its node), or a configuration of it that moves rows and columns elsewhere.
        ModelError: a shape the field needs is unknown.
    """
    image = graph.image_input
    if image.name not in shapes:
        raise ModelError(f"the shape of the image input {image.name!r} is unknown")
    walker = _Walker(graph, shapes, grid(shapes[image.name], image.layout))
    if tensor == image.name:
        return walker.public(walker.fields[tensor])
    producer = graph.producer.get(tensor)
    if producer is None:
        raise OptionError(f"{tensor!r} is not a tensor the model computes; `fixtrace layers MODEL` lists them")
    path = nx.ancestors(graph.graph, producer.name) | {producer.name}
    for node in graph.nodes:
        if node.name in path:
            walker.step(node)
    if tensor not in walker.fields:
        raise OptionError(f"tensor {tensor!r} is not computed from the image input: it has no receptive field")
    return walker.public(walker.fields[tensor])


class _Walker:
    """Fields of the tensors met so far, one node at a time in topological order."""

    def __init__(self, graph: LayerGraph, shapes: dict[str, tuple[int, ...]], image: tuple[int, int]) -> None:
        self.graph = graph
        self.shapes = shapes
        self.image = image
        self.layouts = feature_layouts(graph)
        self.shape_only = set(graph.shape_only)
        self.fields: dict[str, _Field] = {graph.image_input.name: _Field((_Axis(1, 1, 0.0), _Axis(1, 1, 0.0)))}

    def public(self, field: _Field) -> ReceptiveField:
        rows, cols = field.axes
        return ReceptiveField((rows.size, cols.size), (rows.jump, cols.jump), (rows.centre, cols.centre), self.image, field.whole)

    def whole(self) -> _Field:
        rows, cols = self.image
        return _Field((_Axis(rows, 0, (rows - 1) / 2), _Axis(cols, 0, (cols - 1) / 2)), whole=True)

    def step(self, node: Node) -> None:
        computed = [t for t in node.inputs if t in self.fields]
        if not computed or all(name in self.shape_only for name in node.outputs if name):
            return  # not on the image's path, or reading only its shape (Shape, Size)
        field = self._field(node, computed)
        for name in node.outputs:
            if name:
                self.fields[name] = field

    def _field(self, node: Node, computed: list[str]) -> _Field:
        op = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
        if op in _WINDOWED:
            return self._windowed(node, computed)
        if op in _WHOLE:
            return self.whole()
        if op in _REDUCTIONS:
            return self._reduction(node, computed)
        if op == "Transpose":
            return self._transpose(node)
        if op == "Pad":
            return self._pad(node, computed)
        if op == "Concat":
            self._check_concat(node)
        if op in _ELEMENTWISE or (ops.has_trait(node, "spatial") and not ops.has_trait(node, "windowed")):
            return self._union(node, computed)
        raise _unsupported(node, "no receptive-field rule")

    def _windowed(self, node: Node, computed: list[str]) -> _Field:
        if computed != [node.inputs[0]]:
            raise _unsupported(node, "its weights are computed from the image")
        field = self.fields[node.inputs[0]]
        if field.whole:
            return field
        kernel: tuple[int, ...] | None = pool_kernel(node)
        if node.op_type == "Conv" and kernel is None:
            weights = self.graph.constants.get(node.inputs[1])
            kernel = tuple(int(k) for k in weights.shape[2:]) if weights is not None and weights.ndim == 4 else None
        if kernel is None or len(kernel) != 2:
            raise _unsupported(node, "only 2-D windows are handled")
        in_hw, out_hw = self._hw(node.inputs[0]), self._hw(node.outputs[0])
        if attribute(node, "auto_pad", self.graph.opset) in ("SAME_UPPER", "SAME_LOWER") and (in_hw is None or out_hw is None):
            raise ModelError(
                f"the shapes around node {node.name!r} ({node.op_type}) are unknown: its SAME padding cannot be resolved"
            )
        win = window(node, kernel, in_hw or (0, 0), out_hw or (0, 0), self.graph.opset)
        axes = []
        for axis, k, s, d, p in zip(field.axes, win.kernel, win.strides, win.dilations, win.pads):
            span = (int(k) - 1) * int(d)  # the dilated kernel's extent, minus one
            axes.append(_Axis(axis.size + span * axis.jump, axis.jump * int(s), axis.centre + (span / 2 - int(p)) * axis.jump))
        return _Field((axes[0], axes[1]))

    def _hw(self, name: str) -> tuple[int, int] | None:
        shape = self.shapes.get(name)
        return (int(shape[2]), int(shape[3])) if shape is not None and len(shape) == 4 else None

    def _spatial_axes(self, node: Node, name: str) -> tuple[int, int]:
        """The (row, col) axes of the rank-4 map ``name`` in its established layout."""
        layout = self.layouts.get(name)
        if layout is None:
            raise _unsupported(node, f"the layout of {name!r} is not established, so its rows and columns are unknown")
        return layout.index("H"), layout.index("W")

    def _reduction(self, node: Node, computed: list[str]) -> _Field:
        name = node.inputs[0]
        if computed != [name]:
            return self.whole()  # the axes themselves come from the image
        if self.fields[name].whole:
            return self.fields[name]
        axes = node.attr("axes")
        if axes is None and len(node.inputs) > 1 and node.inputs[1]:
            if not self.graph.is_constant(node.inputs[1]):
                return self.whole()  # axes known only at run time: any of them may be spatial
            axes = self.graph.constants[node.inputs[1]].tolist()
        rank = len(self.shapes.get(name, ()))
        if rank != 4 or name not in self.layouts:
            return self.whole()
        reduced = resolve_axes(node.op_type, None if axes is None else tuple(int(a) for a in axes), rank)
        return self.whole() if set(reduced) & set(self._spatial_axes(node, name)) else self.fields[name]

    def _transpose(self, node: Node) -> _Field:
        field = self.fields[node.inputs[0]]
        if field.whole or (self.layouts.get(node.inputs[0]) in LAYOUTS and self.layouts.get(node.outputs[0]) in LAYOUTS):
            return field
        raise _unsupported(node, f"permutation {node.attr('perm')} does not keep rows and columns as rows and columns")

    def _pad(self, node: Node, computed: list[str]) -> _Field:
        name = node.inputs[0]
        field = self.fields[name]
        if computed != [name]:
            raise _unsupported(node, "the pads are computed from the image")
        if field.whole:
            return field
        pads = node.attr("pads")
        if pads is None:
            if not self.graph.is_constant(node.inputs[1]):
                raise _unsupported(node, "the pads are computed, not constant")
            pads = self.graph.constants[node.inputs[1]].tolist()
        rank = len(self.shapes.get(name, ()))
        axes = list(range(rank))
        if len(node.inputs) > 3 and node.inputs[3]:
            if not self.graph.is_constant(node.inputs[3]):
                raise _unsupported(node, "the padded axes are computed, not constant")
            axes = [int(a) % rank for a in self.graph.constants[node.inputs[3]].tolist()]
        begin = dict(zip(axes, (int(p) for p in pads)))
        shifted = [
            _Axis(axis.size, axis.jump, axis.centre - begin.get(k, 0) * axis.jump)
            for axis, k in zip(field.axes, self._spatial_axes(node, name))
        ]
        return _Field((shifted[0], shifted[1]))

    def _check_concat(self, node: Node) -> None:
        out = node.outputs[0]
        rank = len(self.shapes.get(out, ()))
        axis = int(node.attr("axis", 1)) % max(rank, 1)
        if axis in self._spatial_axes(node, out):
            raise _unsupported(node, "it concatenates along rows or columns; only channel concatenation is handled")

    def _union(self, node: Node, computed: list[str]) -> _Field:
        fields = [self.fields[t] for t in computed]
        if len(fields) == 1 or any(f.whole for f in fields):
            return fields[0] if len(fields) == 1 else self.whole()
        out_shape = self.shapes.get(node.outputs[0])
        full = [self.shapes.get(t) == out_shape and out_shape is not None for t in computed]
        if all(full) and all(len({f.axes[k].jump for f in fields}) == 1 for k in (0, 1)):
            axes = []
            for k in (0, 1):
                low, high = min(f.axes[k].low for f in fields), max(f.axes[k].high for f in fields)
                axes.append(_Axis(int(round(high - low)) + 1, fields[0].axes[k].jump, (low + high) / 2))
            return _Field((axes[0], axes[1]))
        return self._covering_union(node, computed, fields)

    def _covering_union(self, node: Node, computed: list[str], fields: Sequence[_Field]) -> _Field:
        """The union when the inputs' grids differ (broadcasting, unequal strides): each cell's
        window is the smallest one centred on the first full-size input's centre that holds the
        windows of every input cell it reads."""
        out = node.outputs[0]
        out_grid = grid(self.shapes[out], self.layouts[out]) if out in self.layouts and out in self.shapes else None
        if out_grid is None:
            raise _unsupported(node, f"the rows and columns of {out!r} are unknown, so its inputs' fields cannot be joined")
        grids = [self._grid(node, t) for t in computed]
        reference = next((f for f, g in zip(fields, grids) if g == out_grid), None)
        if reference is None:
            raise _unsupported(node, "no computed input has the output's rows and columns")
        axes = []
        for k in (0, 1):
            cells = np.arange(out_grid[k], dtype=np.float64)
            reads = [cells if g[k] == out_grid[k] else np.zeros_like(cells) for g in grids]
            low = np.min([f.axes[k].low + r * f.axes[k].jump for f, r in zip(fields, reads)], axis=0)
            high = np.max([f.axes[k].high + r * f.axes[k].jump for f, r in zip(fields, reads)], axis=0)
            centre = reference.axes[k].centre + cells * reference.axes[k].jump
            reach = float(np.max(np.maximum(centre - low, high - centre)))
            axes.append(_Axis(int(round(2 * reach)) + 1, reference.axes[k].jump, reference.axes[k].centre))
        return _Field((axes[0], axes[1]))

    def _grid(self, node: Node, name: str) -> tuple[int, int]:
        shape = self.shapes.get(name)
        if shape is None or len(shape) != 4:
            raise _unsupported(node, f"input {name!r} is not a rank-4 map of known shape")
        rows, cols = self._spatial_axes(node, name)
        return int(shape[rows]), int(shape[cols])


def _unsupported(node: Node, detail: str) -> UnsupportedOpError:
    """An error naming the node and why its field cannot be composed; lists the ops that can."""
    known = set(_WINDOWED) | set(_ELEMENTWISE) | set(_WHOLE) | set(_REDUCTIONS) | {"Transpose", "Pad"}
    known |= set(ops.ops_with("spatial"))
    return UnsupportedOpError(node.op_type, node.name, sorted(known), f"receptive field: {detail}", node.domain)
