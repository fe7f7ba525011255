"""Class names: a user's labels file, the model's own (its metadata), the bundled ImageNet names,
or plain indices."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import onnx

from fixtrace.errors import ModelError, OptionError
from fixtrace.files import check_input_file
from fixtrace.model.metadata import metadata_json

#: The ONNX ``metadata_props`` key holding the class names as a JSON list of strings.
METADATA_KEY = "fixtrace.labels"


def labels_from_model(model: onnx.ModelProto) -> list[str] | None:
    """The class names the model's exporter wrote into its metadata, or None.

    Raises:
        ModelError: the metadata holds something other than a JSON list of strings.
    """
    names = metadata_json(model, METADATA_KEY)
    if names is not None and (not isinstance(names, list) or not all(isinstance(n, str) for n in names)):
        raise ModelError(f"the model's metadata {METADATA_KEY!r} must be a JSON list of class names (strings)")
    return names


def class_names(num_classes: int, labels_file: str | Path | None = None, model: onnx.ModelProto | None = None) -> list[str]:
    """Names for ``num_classes`` outputs.

    Args:
        num_classes: how many scores the model returns per image.
        labels_file: a UTF-8 text file with one name per line.
        model: without a labels file, the model whose metadata names may hold the names
            (``fixtrace.labels``); without either, 1000 (or 1001, with a background class first)
            outputs get the bundled ImageNet names.

    Returns:
        One name per class.

    Raises:
        OptionError: the labels file is missing, not a regular file, not UTF-8 text, or has
            fewer names than classes.
        ModelError: the model's metadata labels are not a list of strings, one per class.
    """
    if labels_file is not None:
        path = check_input_file(labels_file, "labels file", OptionError)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (UnicodeDecodeError, OSError) as exc:
            raise OptionError(f"cannot read labels file {path} as UTF-8 text: {exc}") from None
        names = [line.strip() for line in text.splitlines() if line.strip()]
        if len(names) < num_classes:
            raise OptionError(f"labels file {path} has {len(names)} names for {num_classes} classes")
        return names[:num_classes]
    carried = labels_from_model(model) if model is not None else None
    if carried is not None:
        if len(carried) != num_classes:
            raise ModelError(
                f"the model's metadata {METADATA_KEY!r} has {len(carried)} class names for {num_classes} "
                "classes (--labels FILE overrides it)"
            )
        return carried
    if num_classes in (1000, 1001):
        text = resources.files("fixtrace").joinpath("data/imagenet_classes.txt").read_text(encoding="utf-8")
        names = [line.strip() for line in text.splitlines() if line.strip()]
        return names if num_classes == 1000 else ["background", *names]
    return [f"class {i}" for i in range(num_classes)]
