"""Op traits: what the code outside the rules may ask about an op type, declared by the op modules."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fixtrace.ops.registry import DEFAULT_DOMAINS, FIXATIONS, GRADIENTS, OP_TRAITS, Registry, load

if TYPE_CHECKING:
    from fixtrace.model.layer_graph import Node

#: Every trait an op module may declare, with its meaning.
TRAIT_NAMES: dict[str, str] = {
    "spatial": "keeps an NCHW map's layout, so that its output is a feature map a layer method may read",
    "channels_first": "ONNX defines its output as (N, C, ...) whatever the graph does around it (Conv, pools, BatchNorm)",
    "reindex": "only re-indexes its first input, row-major order kept (reshapes, identities)",
    "permute": "moves its first input's elements to other positions, values unchanged (Transpose)",
    "windowed": "slides a window: its strides, dilations and kernel_shape must be positive",
    "downsampling": "a windowed op with rules whose strides shrink the map (a strided conv or pool)",
    "activation": "BatchNorm or a ReLU-like rectifier a conv's map passes through before it is an activation",
    "weighted": "its constant inputs after the first are learned weights",
    "linear": "a learned linear layer (conv, fully connected): what the model-randomisation check re-initialises",
}


def _check(trait: str) -> None:
    if trait not in TRAIT_NAMES:
        raise ValueError(f"unknown trait {trait!r}; known: {', '.join(sorted(TRAIT_NAMES))}")


def has_trait(op: str | Node, trait: str) -> bool:
    """Whether an op type (or a node, whose domain must be the default one) has ``trait``.

    Raises:
        ValueError: ``trait`` is not one of TRAIT_NAMES.
    """
    _check(trait)
    load()
    if not isinstance(op, str):
        if op.domain not in DEFAULT_DOMAINS:
            return False
        op = op.op_type
    return trait in OP_TRAITS.get(op, ())


def ops_with(trait: str) -> frozenset[str]:
    """Every op type with ``trait``.

    Raises:
        ValueError: ``trait`` is not one of TRAIT_NAMES.
    """
    _check(trait)
    load()
    return frozenset(op for op, traits in OP_TRAITS.items() if trait in traits)


def supported(kind: str) -> list[str]:
    """Every op type with a rule of ``kind`` ("fixation" or "gradient"), sorted.

    Raises:
        ValueError: another kind.
    """
    registries: dict[str, Registry] = {"fixation": FIXATIONS, "gradient": GRADIENTS}
    if kind not in registries:
        raise ValueError(f"kind must be 'fixation' or 'gradient', not {kind!r}")
    return registries[kind].supported()
