"""Which feature maps a toolbox view reads: named tensors, or every conv's (rectified) output."""

from __future__ import annotations

from fixtrace.errors import OptionError
from fixtrace.model.layer_graph import LayerGraph, Node
from fixtrace.toolbox.options import ALL_CONV

#: Ops between a conv and its rectifier that keep each channel apart: BatchNormalization, a
#: layout Transpose (channels-last exports) and a product or sum with a constant (a folded BN).
_PER_CHANNEL = {"BatchNormalization", "Transpose"}
_WITH_A_CONSTANT = {"Mul", "Add", "Sub", "Div"}
_RECTIFIERS = {"Relu", "Clip"}


def conv_maps(graph: LayerGraph) -> list[str]:
    """Each Conv node's map as the model goes on to use it, in graph order: moved past the
    per-channel ops that read it alone, and past a ReLU or Clip after them (a conv whose map
    another node also reads keeps its own output)."""
    maps = []
    for node in graph.nodes:
        if node.op_type == "Conv" and node.outputs and node.outputs[0]:
            tensor = node.outputs[0]
            follower = _only_reader(graph, tensor)
            while follower is not None and _per_channel(graph, follower):
                tensor, follower = follower.outputs[0], _only_reader(graph, follower.outputs[0])
            if follower is not None and follower.op_type in _RECTIFIERS:
                tensor = follower.outputs[0]
            maps.append(tensor)
    return maps


def _per_channel(graph: LayerGraph, node: Node) -> bool:
    if node.op_type in _PER_CHANNEL:
        return True
    computed = [t for t in node.inputs if t and not graph.is_constant(t)]
    return node.op_type in _WITH_A_CONSTANT and len(computed) == 1


def _only_reader(graph: LayerGraph, tensor: str) -> Node | None:
    readers = graph.consumers.get(tensor, [])
    return readers[0] if len(readers) == 1 and tensor not in graph.outputs else None


def choose_layers(graph: LayerGraph, text: str | None, flag: str = "--layer") -> list[str]:
    """The layers a ``--layer`` value names: comma-separated tensor names, or ``all-conv``.

    Raises:
        OptionError: nothing named, or ``all-conv`` on a model without a Conv.
    """
    names = [part.strip() for part in (text or "").split(",") if part.strip()]
    if not names:
        raise OptionError(f"{flag} must name one or more tensors (comma-separated) or {ALL_CONV}, not {text!r}")
    chosen: list[str] = []
    for name in names:
        found = conv_maps(graph) if name == ALL_CONV else [name]
        if not found:
            raise OptionError(f"{flag} {ALL_CONV}: the model has no Conv node")
        chosen += [n for n in found if n not in chosen]
    return chosen
