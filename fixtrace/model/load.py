"""Read an ONNX model from a path, bytes or a ModelProto, with clear errors."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import onnx
from google.protobuf.message import DecodeError

from fixtrace.errors import ModelError, first_line

ModelSource = Union[str, os.PathLike, bytes, onnx.ModelProto]


def load_model(source: ModelSource) -> onnx.ModelProto:
    """Parse and sanity-check an ONNX model.

    Args:
        source: a file path, the serialized bytes, or an already parsed ``onnx.ModelProto``.

    Returns:
        The parsed model, with external data (if any) loaded.

    Raises:
        ModelError: the file is missing, truncated, not ONNX, or holds no usable graph.
    """
    if isinstance(source, onnx.ModelProto):
        model = source
        where = "the given ModelProto"
    elif isinstance(source, (bytes, bytearray)):
        model = _parse(bytes(source), "the given bytes")
        where = "the given bytes"
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        where = str(path)
        if not path.is_file():
            raise ModelError(f"model file not found: {path}")
        try:
            model = onnx.load(str(path), load_external_data=True)
        except DecodeError as exc:
            raise ModelError(f"{path} is not a valid ONNX file (truncated or corrupt): {exc}") from None
        except (OSError, ValueError, RuntimeError, onnx.checker.ValidationError) as exc:
            raise ModelError(f"cannot read {path}: {first_line(exc)}") from None
    else:
        raise ModelError(f"a model must be a path, bytes or onnx.ModelProto, not {type(source).__name__}")
    _check(model, where)
    return model


def _parse(data: bytes, where: str) -> onnx.ModelProto:
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except DecodeError as exc:
        raise ModelError(f"{where} are not a valid ONNX model (truncated or corrupt): {exc}") from None
    return model


def _check(model: onnx.ModelProto, where: str) -> None:
    graph = model.graph
    if not graph.node:
        raise ModelError(f"{where} holds no graph nodes: not an ONNX model, or an empty one")
    if not model.opset_import:
        raise ModelError(f"{where} declares no opset: not a usable ONNX model")
    try:
        onnx.checker.check_model(model, full_check=False)
    except (onnx.checker.ValidationError, ValueError) as exc:
        raise ModelError(f"{where} fails the ONNX checker: {first_line(exc)}") from None
