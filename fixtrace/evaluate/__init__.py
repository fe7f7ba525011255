"""Evaluate explanation methods on a localization dataset (``fixtrace evaluate``).

Names are loaded on first use, so that the command line's parser can read the dataset format and
method names without importing the engine.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "fixtrace.evaluate.dataset": ("BOXES_FILE", "DatasetError", "Item", "read_dataset"),
    "fixtrace.evaluate.methods": ("BASELINE", "DEFAULT_METHODS", "MethodSpec", "parse_method"),
    "fixtrace.evaluate.run": ("Evaluation", "MapResult", "MethodScores", "evaluate", "make_maps", "score_map"),
    "fixtrace.evaluate.table": ("save", "to_csv", "to_markdown"),
}
_WHERE = {name: module for module, names in _HOMES.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'fixtrace.evaluate' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
