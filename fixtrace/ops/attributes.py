"""Node attributes with the ONNX schema's defaults, so that no rule hand-writes a default."""

from __future__ import annotations

from functools import cache
from typing import Any

import onnx

from fixtrace.model.layer_graph import Node, attr_value

_MISSING = object()


@cache
def schema_default(op_type: str, name: str, opset: int | None = None, domain: str = "") -> Any:
    """The default the ONNX schema (at ``opset``, latest when None) gives attribute ``name``, or None
    (no default value, or an attribute the op gained after ``opset``).

    Raises:
        KeyError: no version of the op's schema has an attribute ``name``.
    """
    try:
        schema = onnx.defs.get_schema(op_type, max_inclusive_version=opset or onnx.defs.onnx_opset_version(), domain=domain)
    except onnx.defs.SchemaError:  # the op is newer than the model's opset: its first schema
        schema = onnx.defs.get_schema(op_type, domain=domain)
    if name not in schema.attributes:
        if name not in onnx.defs.get_schema(op_type, domain=domain).attributes:
            raise KeyError(f"{op_type} has no attribute {name!r}")
        return None  # an attribute newer than the opset (AveragePool's dilations before 19)
    default = schema.attributes[name].default_value
    if default.type == onnx.AttributeProto.UNDEFINED:
        return None
    return attr_value(default)


def attribute(node: Node, name: str, opset: int | None = None, fallback: Any = None) -> Any:
    """Attribute ``name`` of ``node``, else its schema default, else ``fallback``.

    Args:
        node: the node.
        name: the attribute.
        opset: the model's default-domain opset (defaults change between versions).
        fallback: for attributes whose default the schema states only in prose (strides,
            dilations and pads: "1 / 0 along each spatial axis"), a value of the right rank.

    Returns:
        The value (lists as lists, strings as str), or ``fallback`` when neither the node nor
        the schema gives one.

    Raises:
        KeyError: no version of the op's schema has an attribute ``name``.
    """
    value = node.attrs.get(name, _MISSING)
    if value is not _MISSING:
        return value
    default = schema_default(node.op_type, name, opset, "" if node.domain == "ai.onnx" else node.domain)
    return fallback if default is None else default
