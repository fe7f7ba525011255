"""The op registry: every op module loaded, traits, schema defaults, and adding an op as one module."""

from __future__ import annotations

import importlib.util
import pkgutil
import sys

import numpy as np
import onnx
import pytest
from onnx import helper
from test_op_contracts import OpCase, assert_vjp_matches_finite_differences
from test_rules_oracle import _w, build

import fixtrace.ops
from fixtrace import Explainer, UnsupportedOpError, ops
from fixtrace.fixations import supported_ops
from fixtrace.model.layer_graph import Node, attr_value
from fixtrace.ops.attributes import attribute
from fixtrace.ops.registry import (
    FIXATIONS,
    GRADIENTS,
    OP_TRAITS,
    SHARED_MODULES,
    Registry,
)


def _node(op: str, domain: str = "", **attrs) -> Node:
    return Node(name="n", op_type=op, inputs=["x"], outputs=["y"], attrs=attrs, order=0, domain=domain)


def _rule_classes() -> list[type]:
    return [FIXATIONS.rule_for(_node(op)) for op in FIXATIONS.supported()] + [
        GRADIENTS.rule_for(_node(op)) for op in GRADIENTS.supported()
    ]


def test_every_op_module_is_loaded_and_contributes_rules_or_traits():
    ops.supported("fixation")
    families = [m.name for m in pkgutil.iter_modules(fixtrace.ops.__path__) if m.name not in SHARED_MODULES]
    assert len(families) >= 8
    owners = {cls.__module__ for cls in _rule_classes()}
    for name in families:
        module = sys.modules[f"fixtrace.ops.{name}"]
        assert module.__name__ in owners or getattr(module, "TRAITS", None), name


def test_every_rule_lives_in_an_op_module():
    assert all(cls.__module__.startswith("fixtrace.ops.") for cls in _rule_classes())
    assert importlib.util.find_spec("fixtrace.fixations.rules") is None
    assert importlib.util.find_spec("fixtrace.gradients.rules") is None


def test_supported_lists_both_rule_kinds():
    assert ops.supported("fixation") == supported_ops()
    assert "Softmax" in ops.supported("gradient") and "Softmax" not in ops.supported("fixation")
    with pytest.raises(ValueError, match="kind must be"):
        ops.supported("forward")


# The sets the traits replaced, member for member.
OLD_SETS = {
    "spatial": {
        "Conv",
        "Relu",
        "Clip",
        "LeakyRelu",
        "BatchNormalization",
        "Add",
        "Sum",
        "Mul",
        "MaxPool",
        "AveragePool",
        "Concat",
        "HardSwish",
        "Sigmoid",
        # Every element-wise op keeps a map's layout (model.layout follows NHWC maps through them).
        "Sub",
        "Div",
        "Max",
        "Min",
        "PRelu",
        "Elu",
        "Selu",
        "Celu",
        "HardSigmoid",
        "Tanh",
        "Softplus",
        "Mish",
        "Gelu",
        "Erf",
        "Pow",
    },
    "reindex": {"Flatten", "Reshape", "Squeeze", "Unsqueeze", "Identity", "Dropout"},
    "permute": {"Transpose"},
    "downsampling": {"Conv", "MaxPool", "AveragePool"},
    "activation": {"BatchNormalization", "Relu", "Clip", "LeakyRelu"},
    "weighted": {
        "Conv",
        "ConvTranspose",
        "Gemm",
        "MatMul",
        "BatchNormalization",
        "PRelu",
        "InstanceNormalization",
        "LayerNormalization",
    },
    "windowed": {"Conv", "ConvTranspose", "MaxPool", "AveragePool", "LpPool", "MaxUnpool", "ConvInteger", "QLinearConv"},
    "linear": {"Conv", "ConvTranspose", "Gemm", "MatMul"},
}


#: Traits added since, with their members.
NEW_SETS = {
    # ONNX defines these outputs as (N, C, ...): where model.layout establishes NCHW maps.
    "channels_first": {
        "Conv",
        "ConvTranspose",
        "MaxPool",
        "AveragePool",
        "LpPool",
        "GlobalAveragePool",
        "GlobalMaxPool",
        "BatchNormalization",
        "InstanceNormalization",
        "LRN",
    },
}


@pytest.mark.parametrize("trait", list(OLD_SETS) + list(NEW_SETS))
def test_traits_keep_the_members_of_the_sets_they_replaced(trait):
    members = {**OLD_SETS, **NEW_SETS}[trait]
    assert ops.ops_with(trait) == members
    assert all(ops.has_trait(op, trait) for op in members)
    assert set(ops.TRAIT_NAMES) == set(OLD_SETS) | set(NEW_SETS)


def test_trait_queries_take_nodes_and_refuse_unknown_traits():
    assert ops.has_trait(_node("Reshape"), "reindex")
    assert not ops.has_trait(_node("Reshape", domain="com.example"), "reindex")
    assert not ops.has_trait("Gemm", "spatial")
    with pytest.raises(ValueError, match="unknown trait"):
        ops.has_trait("Conv", "spacial")
    with pytest.raises(ValueError, match="unknown trait"):
        ops.ops_with("spacial")


def _schema(op: str, opset: int) -> onnx.defs.OpSchema:
    try:
        return onnx.defs.get_schema(op, max_inclusive_version=opset)
    except onnx.defs.SchemaError:
        return onnx.defs.get_schema(op)


@pytest.mark.parametrize("opset", [11, 13, 20, 23])
def test_attribute_defaults_agree_with_the_onnx_schema(opset):
    checked = 0
    for op in sorted(set(ops.supported("fixation")) | set(ops.supported("gradient"))):
        for name, spec in _schema(op, opset).attributes.items():
            has_default = spec.default_value.type != onnx.AttributeProto.UNDEFINED
            want = attr_value(spec.default_value) if has_default else "fallback"
            assert attribute(_node(op), name, opset, fallback="fallback") == want, (op, name)
            checked += has_default
    assert checked > 20


def test_attribute_prefers_the_node_and_knows_schema_versions():
    assert attribute(_node("Conv", group=4), "group", 13) == 4
    assert attribute(_node("Conv"), "group", 13) == 1
    assert attribute(_node("Conv"), "strides", 13) is None  # "1 along each axis" only in prose
    assert attribute(_node("Conv"), "strides", 13, [1, 1]) == [1, 1]
    assert attribute(_node("Softmax"), "axis", 11) == 1 and attribute(_node("Softmax"), "axis", 13) == -1
    assert attribute(_node("AveragePool"), "dilations", 13, [1, 1]) == [1, 1]  # dilations came with opset 19
    assert attribute(_node("Gemm"), "alpha", 13) == pytest.approx(1.0)
    assert attribute(_node("Gelu"), "approximate", 20) == "none"
    with pytest.raises(KeyError):
        attribute(_node("Conv"), "stride", 13)


def test_a_registry_refuses_two_rules_for_one_op_and_forgets_on_request():
    registry = Registry("test")
    registry.register("Foo")(type("A", (), {}))
    with pytest.raises(RuntimeError, match="two test rules for Foo"):
        registry.register("Foo")(type("B", (), {}))
    registry.unregister("Foo", "Bar")
    assert registry.supported() == []


def _softsign_model() -> bytes:
    rng = np.random.default_rng(30)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Softsign", ["c"], ["s"]),
        helper.make_node("GlobalAveragePool", ["s"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "fc"], ["logits"], transB=1),
    ]
    return build(nodes, (1, 3, 8, 8), ["logits"], {"w": _w(rng, 4, 3, 3, 3), "fc": _w(rng, 5, 4)}).SerializeToString()


def test_adding_an_op_is_one_module():
    model = _softsign_model()
    image = (np.random.default_rng(0).random((8, 8, 3)) * 255).astype(np.uint8)
    with pytest.raises(UnsupportedOpError, match="Softsign"):
        Explainer(model, preset="raw")
    with ops.registered("softsign_op"):
        assert "Softsign" in ops.supported("fixation") and "Softsign" in ops.supported("gradient")
        assert ops.has_trait("Softsign", "spatial")
        explanation = Explainer(model, preset="raw").explain(image)
        assert len(explanation.points) > 0
        # Pass-through: Softsign's input holds exactly the fixations of its output.
        layers = explanation.per_layer
        np.testing.assert_array_equal(layers["c"].own.index, layers["s"].own.index)
        np.testing.assert_array_equal(layers["c"].own.count, layers["s"].own.count)
        assert_vjp_matches_finite_differences(OpCase("Softsign"))
    assert "Softsign" not in ops.supported("fixation") and "Softsign" not in ops.supported("gradient")
    assert "Softsign" not in OP_TRAITS
    with pytest.raises(UnsupportedOpError, match="Softsign"):
        Explainer(model, preset="raw")
