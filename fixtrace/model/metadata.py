"""The JSON values exporters write into an ONNX model's ``metadata_props`` (preprocessing, labels)."""

from __future__ import annotations

import json
from typing import Any

import onnx

from fixtrace.errors import ModelError


def metadata_json(model: onnx.ModelProto, key: str) -> Any | None:
    """The JSON value held under ``key`` in the model's metadata, or None when the key is absent.

    Raises:
        ModelError: the value is not JSON.
    """
    for prop in model.metadata_props:
        if prop.key == key:
            try:
                return json.loads(prop.value)
            except json.JSONDecodeError as exc:
                raise ModelError(f"the model's metadata {key!r} is not JSON: {exc}") from None
    return None
