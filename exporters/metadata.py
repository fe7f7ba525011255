"""The last step every exporter shares: write what fixtrace reads from an ONNX file (the
preprocessing preset with the input layout, the class names), check the model and save it as one
self-contained file when it fits under protobuf's 2 GB."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from fixtrace.images.presets import Preset, get_preset
from fixtrace.labels import METADATA_KEY as LABELS_KEY

#: protobuf cannot serialise a message of 2 GB or more: bigger models keep their weights beside.
SINGLE_FILE_LIMIT = 2**31 - 2**20
#: Initializers at least this large go to the side file when the model must be split.
EXTERNAL_THRESHOLD = 1024


def finish(
    path: str | os.PathLike,
    *,
    layout: str,
    preset: str | Preset | None = None,
    labels: Sequence[str] | None = None,
    input_name: str | None = None,
    output_name: str | None = None,
) -> Path:
    """Write fixtrace's metadata into an exported ONNX file, check it and save it in place.

    Args:
        path: the exported ``.onnx`` file (its external data, if any, beside it).
        layout: the input layout the exporter produced, ``"NCHW"`` or ``"NHWC"``; written into
            the preset's ``layout`` field.
        preset: a fixtrace Preset or a preset name, written under ``fixtrace.preprocessing``;
            None writes no preprocessing.
        labels: class names, written under ``fixtrace.labels`` (one per output score).
        input_name, output_name: rename the single image input / class-score output.

    Returns:
        The path of the saved model.

    Raises:
        ValueError: the model has not exactly one input and one output, the input is not rank 4,
            its shape contradicts ``layout``, or there are not as many labels as scores.
        onnx.checker.ValidationError: the saved model is not valid ONNX.
    """
    import onnx

    path = Path(path)
    model = onnx.load(str(path), load_external_data=False)
    side_files = {path.parent / e.value for t in _external(model) for e in t.external_data if e.key == "location"}
    onnx.external_data_helper.load_external_data_for_model(model, str(path.parent))
    source, output = _single_io(model)
    dims = [d.dim_value if d.HasField("dim_value") else None for d in source.type.tensor_type.shape.dim]
    _check_layout(dims, layout)
    classes = [d.dim_value if d.HasField("dim_value") else None for d in output.type.tensor_type.shape.dim][-1]
    if input_name and input_name != source.name:
        _rename(model, source.name, input_name)
    if output_name and output_name != output.name:
        _rename(model, output.name, output_name)
    props = {}
    if preset is not None:
        props |= replace(get_preset(preset), layout=layout).to_metadata()
    if labels is not None:
        names = [str(n) for n in labels]
        if classes is not None and len(names) != classes:
            raise ValueError(f"{len(names)} labels for a model with {classes} class scores")
        props[LABELS_KEY] = json.dumps(names)
    _set_metadata(model, props)
    if model.ByteSize() < SINGLE_FILE_LIMIT:
        onnx.save(model, str(path))
        for stale in side_files - {path}:
            stale.unlink(missing_ok=True)
    else:
        onnx.save(model, str(path), save_as_external_data=True, location=path.name + ".data", size_threshold=EXTERNAL_THRESHOLD)
    onnx.checker.check_model(str(path), full_check=True)  # by path: a model over 2 GB cannot be checked in memory
    return path


def _external(model):
    from onnx import TensorProto

    return [t for t in model.graph.initializer if t.data_location == TensorProto.EXTERNAL]


def _single_io(model):
    """The one graph input that is not an initializer and the one graph output."""
    weights = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in weights]
    if len(inputs) != 1 or len(model.graph.output) != 1:
        raise ValueError(
            f"fixtrace explains models with one image input and one class-score output; this one has "
            f"{len(inputs)} inputs and {len(model.graph.output)} outputs"
        )
    return inputs[0], model.graph.output[0]


def _check_layout(dims: list[int | None], layout: str) -> None:
    if layout not in ("NCHW", "NHWC"):
        raise ValueError(f"layout must be 'NCHW' or 'NHWC', not {layout!r}")
    if len(dims) != 4:
        raise ValueError(f"the exported input has rank {len(dims)}; an image classifier takes a rank-4 tensor")
    channels = dims[1] if layout == "NCHW" else dims[3]
    if channels not in (None, 1, 3):
        raise ValueError(f"the exported input {dims} has {channels} channels in {layout}: not 1 or 3")


def _rename(model, old: str, new: str) -> None:
    """Rename a graph input or output everywhere the main graph mentions it."""
    graph = model.graph
    for value in [*graph.input, *graph.output, *graph.value_info]:
        if value.name == old:
            value.name = new
    for node in graph.node:
        node.input[:] = [new if n == old else n for n in node.input]
        node.output[:] = [new if n == old else n for n in node.output]


def _set_metadata(model, props: dict[str, str]) -> None:
    """Set ``props`` in ``metadata_props``, replacing the same keys and keeping the others."""
    kept = [(p.key, p.value) for p in model.metadata_props if p.key not in props]
    del model.metadata_props[:]
    for key, value in [*kept, *props.items()]:
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
