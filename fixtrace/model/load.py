"""Read an ONNX model from a path, bytes or a ModelProto, with clear errors."""

from __future__ import annotations

import os
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from fixtrace.errors import ModelError, first_line
from fixtrace.files import check_input_file
from fixtrace.model.external_data import load_external_data, refuse_external_data

ModelSource = str | os.PathLike | bytes | onnx.ModelProto

#: protobuf cannot parse a message over 2 GB; bigger models keep their weights as external data.
MAX_MODEL_BYTES = 2**31 - 1


def load_model(source: ModelSource) -> onnx.ModelProto:
    """Parse and sanity-check an ONNX model.

    Args:
        source: a file path, the serialized bytes, or an already parsed ``onnx.ModelProto``.

    Returns:
        The parsed model, with its external data (if any) read from the model's folder.

    Raises:
        ModelError: the file is missing or not a regular file, truncated, not ONNX, holds no
            usable graph, or its external data is unsafe (see ``load_external_data``).
    """
    if isinstance(source, onnx.ModelProto):
        model = source
        where = "the given ModelProto"
        refuse_external_data(model, "the given ModelProto's tensors")
    elif isinstance(source, (bytes, bytearray)):
        where = "the given bytes"
        model = _parse(bytes(source), where)
        refuse_external_data(model, "the given bytes")
    elif isinstance(source, (str, os.PathLike)):
        path = check_input_file(source, "model file", ModelError)
        where = str(path)
        size = path.stat().st_size
        if size > MAX_MODEL_BYTES:
            raise ModelError(
                f"{path} is {size / 1e9:.1f} GB: over protobuf's 2 GB limit for one ONNX file "
                "(models that big keep their weights as external data)"
            )
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ModelError(f"cannot read {path}: {exc.strerror or exc}") from None
        model = _parse(data, where)
        load_external_data(model, path.parent, Path(os.path.realpath(path)).parent)
    else:
        raise ModelError(f"a model must be a path, bytes or onnx.ModelProto, not {type(source).__name__}")
    _check(model, where)
    return model


def _parse(data: bytes, where: str) -> onnx.ModelProto:
    if not data:
        raise ModelError(f"{where}: empty (0 bytes), not an ONNX model")
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, RuntimeWarning, ValueError) as exc:
        raise ModelError(f"{where} is not a valid ONNX file (truncated or corrupt): {first_line(exc)}") from None
    return model


def _check(model: onnx.ModelProto, where: str) -> None:
    graph = model.graph
    if not graph.node:
        raise ModelError(f"{where} holds no graph nodes: not an ONNX model, or an empty one")
    if not model.opset_import:
        raise ModelError(f"{where} declares no opset: not a usable ONNX model")
    if model.ir_version > onnx.IR_VERSION:
        raise ModelError(
            f"{where} has IR version {model.ir_version}, newer than onnx {onnx.__version__} reads (up to {onnx.IR_VERSION})"
        )
    if not graph.output:
        raise ModelError(f"{where} declares no outputs: there are no class scores to explain")
    try:
        onnx.checker.check_model(model, full_check=False)
    except (onnx.checker.ValidationError, ValueError) as exc:
        raise ModelError(f"{where} fails the ONNX checker: {first_line(exc)}") from None
