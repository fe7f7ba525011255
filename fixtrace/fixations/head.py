"""What the class scores read: a globally pooled map (GAP heads) or a flattened one (VGG heads)."""

from __future__ import annotations

from collections.abc import Mapping

from fixtrace import ops
from fixtrace.model.layer_graph import LayerGraph
from fixtrace.ops.pool import GLOBAL_POOLS


def reads_global_pool(graph: LayerGraph, logits: str, shapes: Mapping[str, tuple[int, ...]] | None = None) -> bool:
    """Whether the path up from ``logits`` meets a global pool before it meets a map: dense
    layers, activations, reshapes, scales and biases between the pool and the scores are passed.

    With ``shapes``, ops on a pooled vector are passed too (a 1x1 conv classifier on a 1x1 map,
    a LayerNorm's two-input nodes: the path follows their first computed input), and a windowed
    pool whose output is 1x1 is a global pool (a 7x7 AveragePool over a 7x7 map).

    Args:
        graph: the layer graph.
        logits: the class-score tensor.
        shapes: static tensor shapes, when known.

    Returns:
        True for a global-pool head, False for a head that reads a flattened map.
    """
    tensor = logits
    while (node := graph.producer.get(tensor)) is not None:
        if node.op_type in GLOBAL_POOLS or (_is_pooled(shapes, tensor) and node.op_type.endswith("Pool")):
            return True
        computed = [t for t in node.inputs if t and not graph.is_constant(t)]
        on_vector = _is_pooled(shapes, tensor) and all(_is_pooled(shapes, t) for t in computed)
        if not computed or (not on_vector and (len(computed) != 1 or ops.has_trait(node, "windowed"))):
            return False
        tensor = computed[0]
    return False


def _is_pooled(shapes: Mapping[str, tuple[int, ...]] | None, tensor: str) -> bool:
    """Whether ``tensor`` is known to hold one value per channel: rank 2, or rank 4 with a 1x1 grid."""
    shape = (shapes or {}).get(tensor)
    if shape is None:
        return False
    return len(shape) <= 2 or (len(shape) == 4 and (tuple(shape[2:]) == (1, 1) or tuple(shape[1:3]) == (1, 1)))
