"""What the class scores read: a globally pooled map (GAP heads) or a flattened one (VGG heads)."""

from __future__ import annotations

from fixtrace import ops
from fixtrace.model.layer_graph import LayerGraph

#: Ops that pool a whole map into one value per channel.
GLOBAL_POOLS = frozenset({"GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool", "ReduceMean", "ReduceSum", "ReduceMax"})


def reads_global_pool(graph: LayerGraph, logits: str) -> bool:
    """Whether the path up from ``logits`` meets a global pool before any windowed op (conv,
    pool) or any node of two computed inputs: dense layers, activations, reshapes, scales and
    biases between the pool and the scores are passed.

    Args:
        graph: the layer graph.
        logits: the class-score tensor.

    Returns:
        True for a global-pool head, False for a head that reads a flattened map.
    """
    tensor = logits
    while (node := graph.producer.get(tensor)) is not None:
        if node.op_type in GLOBAL_POOLS:
            return True
        computed = [t for t in node.inputs if t and not graph.is_constant(t)]
        if len(computed) != 1 or ops.has_trait(node, "windowed"):
            return False
        tensor = computed[0]
    return False
