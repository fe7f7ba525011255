"""The errors fixtrace raises: each carries one line a user can act on."""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def one_line(text: str) -> str:
    """``text`` safe to print as one line: control characters (newlines, escape sequences,
    bidirectional overrides) and undecodable bytes of file names shown as escapes."""
    escaped = _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)
    return escaped.encode("utf-8", "backslashreplace").decode("utf-8")


class FixtraceError(Exception):
    """Base of every error fixtrace raises on purpose; the CLI prints its message as one line."""

    def __init__(self, message: str = "") -> None:
        super().__init__(one_line(str(message)))


class ModelError(FixtraceError):
    """The model file is missing, malformed, unsafe, not an image classifier, or cannot be run
    by onnxruntime."""


class UnsupportedOpError(ModelError):
    """A node on the backward path has no rule.

    Args:
        op_type: the ONNX op type of the node.
        node_name: the node's name (or its first output when unnamed).
        supported: the op types that do have a rule.
        detail: why this particular node cannot be handled, when the op type itself is known.
        domain: the node's operator domain ("" for the default ONNX domain).
    """

    def __init__(self, op_type: str, node_name: str, supported: list[str], detail: str = "", domain: str = "") -> None:
        self.op_type = op_type
        self.node_name = node_name
        self.supported = sorted(supported)
        self.detail = detail
        why = f" ({detail})" if detail else ""
        where = f" of domain {domain!r}" if domain not in ("", "ai.onnx") else ""
        super().__init__(
            f"unsupported op {op_type!r}{where} at node {node_name!r}{why}; supported ops: {', '.join(self.supported)}"
        )


class ImageError(FixtraceError):
    """The image is missing, corrupt, too large, or in a form that cannot be converted."""


class InputShapeError(FixtraceError):
    """The tensor built from the image does not fit the model's input."""


class TargetError(FixtraceError, ValueError):
    """The requested class (``target``, ``top_k``) is not a class of the model's output."""


class OptionError(FixtraceError, ValueError, TypeError):
    """An argument of the wrong type or value (also a ValueError and a TypeError, so code that
    catches the built-in errors keeps working)."""


class OutputError(FixtraceError):
    """An output could not be written.

    Attributes:
        fatal: the disk (or the user's quota) is full: later writes would fail too.
    """

    def __init__(self, message: str, fatal: bool = False) -> None:
        super().__init__(message)
        self.fatal = fatal


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when the message is empty)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class EmptyMapWarning(UserWarning):
    """A method's map came out all zero or not finite: it shows nothing (warned, never raised)."""
