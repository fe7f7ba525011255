"""The errors fixtrace raises: each carries one line a user can act on."""

from __future__ import annotations


class FixtraceError(Exception):
    """Base of every error fixtrace raises on purpose; the CLI prints its message as one line."""


class ModelError(FixtraceError):
    """The model file is missing, malformed, or cannot be run by onnxruntime."""


class UnsupportedOpError(ModelError):
    """A node on the backward path has no rule.

    Args:
        op_type: the ONNX op type of the node.
        node_name: the node's name (or its first output when unnamed).
        supported: the op types that do have a rule.
        detail: why this particular node cannot be handled, when the op type itself is known.
    """

    def __init__(self, op_type: str, node_name: str, supported: list[str], detail: str = "") -> None:
        self.op_type = op_type
        self.node_name = node_name
        self.supported = sorted(supported)
        why = f" ({detail})" if detail else ""
        super().__init__(
            f"unsupported op {op_type!r} at node {node_name!r}{why}; "
            f"supported ops: {', '.join(self.supported)}"
        )


class ImageError(FixtraceError):
    """The image is missing, corrupt, too large, or in a form that cannot be converted."""


class InputShapeError(FixtraceError):
    """The tensor built from the image does not fit the model's input."""


class TargetError(FixtraceError):
    """The requested class index does not exist in the model's output."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when the message is empty)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
