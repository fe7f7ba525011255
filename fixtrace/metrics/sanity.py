"""Model-randomisation sanity check (Adebayo et al. 2018): a map that explains the model must change
when the model's weights are destroyed.

The weighted layers are re-initialised one by one from the logits down (cascading), and after each
step the map is recomputed for the same photo and class and compared with the original map by
Spearman rank correlation. A faithful method's correlation falls; one that stays high is
explaining the photo (edges, contrast), not the model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper
from scipy import stats

from fixtrace.model.layer_graph import LayerGraph
from fixtrace.ops import ops_with

MapOf = Callable[[onnx.ModelProto], np.ndarray]


@dataclass(frozen=True)
class SanityStep:
    """The map after re-initialising every weighted layer from the top down to ``layer``.

    Attributes:
        layer: name of the last node re-initialised ("" for the untouched model).
        rank_correlation: Spearman correlation with the original map (nan for a constant map).
    """

    layer: str
    rank_correlation: float


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two maps of one shape (nan when either is constant)."""
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(stats.spearmanr(a.ravel(), b.ravel()).statistic)


def weighted_nodes(graph: LayerGraph) -> list[onnx.NodeProto]:
    """The nodes of ``linear`` ops (conv, fully connected) with constant weights, from the output back
    to the input (the cascade's order)."""
    constants = {i.name for i in graph.model.graph.initializer}
    linear = ops_with("linear")
    return [n for n in reversed(graph.model.graph.node) if n.op_type in linear and any(name in constants for name in n.input[1:])]


def cascade(model: onnx.ModelProto, nodes: list[onnx.NodeProto], seed: int = 0) -> Iterator[tuple[str, onnx.ModelProto]]:
    """Copies of the model with the weights of ``nodes[:k]`` re-initialised, k = 1, 2, ...

    Each weight and bias is redrawn from a normal distribution with its original standard
    deviation (zero mean), seeded, so the scale of the activations stays plausible.

    Yields:
        (name of the node just re-initialised, the model copy; one copy, updated in place).
    """
    rng = np.random.default_rng(seed)
    current = onnx.ModelProto()
    current.CopyFrom(model)
    initializers = {i.name: i for i in current.graph.initializer}
    for node in nodes:
        for name in node.input[1:]:
            if name in initializers:
                old = numpy_helper.to_array(initializers[name])
                new = rng.normal(0.0, float(old.std()) or 1e-2, old.shape).astype(old.dtype)
                initializers[name].CopyFrom(numpy_helper.from_array(new, name))
        yield node.name or node.output[0], current


def model_randomisation(
    model: onnx.ModelProto, map_of: MapOf, graph: LayerGraph | None = None, seed: int = 0, depths: Sequence[int] | None = None
) -> list[SanityStep]:
    """Run the cascading randomisation.

    Args:
        model: the trained model.
        map_of: model -> map (for a fixed photo and class), e.g. an Explainer built on the
            model copy and asked for the original prediction.
        graph: the parsed model (parsed from ``model`` when not given).
        seed: the random weights.
        depths: compare the map only after these many layers are re-initialised (1 = the top
            layer alone; -1 = all of them); default: after every layer.

    Returns:
        The untouched model's step (correlation 1), then one step per compared depth.
    """
    graph = graph or LayerGraph.from_model(model)
    nodes = weighted_nodes(graph)
    wanted = set(range(1, len(nodes) + 1)) if depths is None else {d if d > 0 else len(nodes) + 1 + d for d in depths}
    original = map_of(model)
    steps = [SanityStep("", rank_correlation(original, original))]
    for depth, (layer, randomised) in enumerate(cascade(model, nodes, seed), start=1):
        if depth in wanted:
            steps.append(SanityStep(layer, rank_correlation(original, map_of(randomised))))
        if depth >= max(wanted, default=0):
            break
    return steps
