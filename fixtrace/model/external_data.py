"""External data (weights stored beside the ``.onnx`` file), read only from inside the model's folder.

fixtrace reads external data itself rather than through onnx, whose checks differ between
versions (onnx 1.15 follows ``../`` and symbolic links out of the folder; 1.23 refuses them).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import onnx
from onnx import TensorProto

from fixtrace.errors import ModelError
from fixtrace.files import check_input_file, inside


def external_tensors(model: onnx.ModelProto) -> Iterator[TensorProto]:
    """Every tensor of the model that keeps its data in an external file: initializers, sparse
    initializers, and tensor attributes, in the main graph, its subgraphs and its functions."""
    graphs = [model.graph]
    nodes = [n for f in model.functions for n in f.node]
    while graphs:
        graph = graphs.pop()
        tensors = [*graph.initializer]
        for sparse in graph.sparse_initializer:
            tensors += [sparse.values, sparse.indices]
        nodes += list(graph.node)
        for node in nodes:
            for attr in node.attribute:
                tensors += [attr.t] if attr.HasField("t") else []
                tensors += list(attr.tensors)
                for sparse in ([attr.sparse_tensor] if attr.HasField("sparse_tensor") else []) + list(attr.sparse_tensors):
                    tensors += [sparse.values, sparse.indices]
                graphs += ([attr.g] if attr.HasField("g") else []) + list(attr.graphs)
        nodes = []
        yield from (t for t in tensors if t.data_location == TensorProto.EXTERNAL)


def load_external_data(model: onnx.ModelProto, folder: Path, real_folder: Path | None = None) -> None:
    """Read every external tensor's bytes into the model, refusing anything outside ``folder``.

    Args:
        model: the parsed model, modified in place.
        folder: the folder of the model file as given.
        real_folder: the folder of the model file with symbolic links resolved (a model reached
            through a link may keep its data beside the real file, as Hugging Face caches do).

    Raises:
        ModelError: a location is absolute, leaves the folder (``..``, a symbolic link pointing
            out), is not a regular file or is missing; an offset or length that is not a whole
            number, reaches beyond the end of the file, or does not match the tensor's shape.
    """
    for tensor in external_tensors(model):
        entries = {e.key: e.value for e in tensor.external_data}
        what = f"external data of tensor {tensor.name!r}"
        path = inside(folder, entries.get("location", ""), what, ModelError, also_inside=[real_folder] if real_folder else [])
        check_input_file(path, f"{what}: its file", ModelError)
        size = os.stat(path).st_size
        offset = _whole(entries.get("offset", "0"), "offset", what)
        length = _whole(entries["length"], "length", what) if "length" in entries else size - offset
        if offset + length > size:
            raise ModelError(f"{what}: offset {offset} + length {length} reaches beyond the end of {path.name} ({size} bytes)")
        needed = _needed_bytes(tensor)
        if needed is not None and needed != length:
            raise ModelError(f"{what}: {length} bytes in {path.name}, but its shape {list(tensor.dims)} needs {needed} bytes")
        with open(path, "rb") as f:
            f.seek(offset)
            tensor.raw_data = f.read(length)
        tensor.data_location = TensorProto.DEFAULT
        del tensor.external_data[:]


def refuse_external_data(model: onnx.ModelProto, source: str) -> None:
    """Raise ModelError if the model still refers to external data (it came without its folder)."""
    for tensor in external_tensors(model):
        location = next((e.value for e in tensor.external_data if e.key == "location"), "?")
        raise ModelError(
            f"{source} refer to external data (tensor {tensor.name!r} in {location!r}) but come without "
            f"a folder to read it from: pass the model's path instead"
        )


def _whole(text: str, key: str, what: str) -> int:
    if not text.isdigit():
        raise ModelError(f"{what}: its {key} {text!r} is not a whole number of bytes")
    return int(text)


#: Bytes per element of the fixed-size types, by TensorProto data type number (sub-byte types,
#: strings and types newer than onnx 1.15 are not checked).
_ITEM_BYTES = {
    1: 4,
    2: 1,
    3: 1,
    4: 2,
    5: 2,
    6: 4,
    7: 8,
    9: 1,
    10: 2,
    11: 8,
    12: 4,
    13: 8,
    14: 8,
    15: 16,
    16: 2,
    17: 1,
    18: 1,
    19: 1,
    20: 1,
}


def _needed_bytes(tensor: TensorProto) -> int | None:
    """Bytes the tensor's shape and type need (None for types without a fixed byte size)."""
    if any(d < 0 for d in tensor.dims):
        raise ModelError(f"tensor {tensor.name!r} has a negative dimension: {list(tensor.dims)}")
    itemsize = _ITEM_BYTES.get(tensor.data_type)
    if itemsize is None:
        return None
    count = 1
    for d in tensor.dims:
        count *= d
    return count * itemsize
