"""PyTorch to ONNX: ``torch.onnx.export`` (TorchScript or dynamo), a dynamic batch, fixtrace's metadata."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from exporters.metadata import finish

#: Default opsets: the TorchScript exporter's long-standing 13; dynamo writes 18 at the least.
DEFAULT_OPSET = {False: 13, True: 18}


def export_torch(
    model: Any,
    example: Any,
    path: str | os.PathLike,
    *,
    preset: Any = None,
    labels: Sequence[str] | None = None,
    dynamo: bool = False,
    opset: int | None = None,
    input_name: str = "input",
    output_name: str = "logits",
) -> Path:
    """Export a PyTorch image classifier (N, C, H, W) -> (N, classes) to one ONNX file.

    Args:
        model: a ``torch.nn.Module``; put in eval mode.
        example: an example input (a tensor or array, any batch size), e.g. ``torch.zeros(1, 3, 224, 224)``.
        path: the ``.onnx`` file to write.
        preset: fixtrace preprocessing (a Preset or a preset name) written into the file.
        labels: class names written into the file.
        dynamo: use the dynamo exporter (``torch.export``; needs onnxscript) instead of TorchScript.
        opset: ONNX opset (default 13 without dynamo, 18 with).
        input_name, output_name: the graph's input and output names.

    Returns:
        The written path.

    Raises:
        ValueError: the model does not return exactly one tensor, or metadata that does not fit.
    """
    import torch

    path = Path(path)
    opset = opset or DEFAULT_OPSET[bool(dynamo)]
    example = example if isinstance(example, torch.Tensor) else torch.as_tensor(example)
    example = example.float()
    model.eval()
    names = {"input_names": [input_name], "output_names": [output_name]}
    with torch.no_grad():
        if not isinstance(model(example), torch.Tensor):
            raise ValueError("the model must return one tensor of class scores")
        if dynamo:
            # A batch of 1 would be specialised to a constant by torch.export: trace a batch of 2.
            traced = example[:1].expand(2, *example.shape[1:]).contiguous() if example.shape[0] == 1 else example
            torch.onnx.export(
                model,
                (traced,),
                str(path),
                dynamo=True,
                opset_version=opset,
                dynamic_shapes=({0: torch.export.Dim("batch")},),
                verbose=False,
                **names,
            )
        else:
            torch.onnx.export(
                model,
                (example,),
                str(path),
                dynamo=False,
                opset_version=opset,
                do_constant_folding=True,
                dynamic_axes={input_name: {0: "batch"}, output_name: {0: "batch"}},
                **names,
            )
    return finish(path, layout="NCHW", preset=preset, labels=labels)
