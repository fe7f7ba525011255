"""Measurements that tell a good explanation from a bad one (names loaded on first use)."""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "fixtrace.metrics.classifier": ("Classifier",),
    "fixtrace.metrics.localization": ("Box", "box_found", "centre_gaussian", "energy_in_box", "iou", "localized", "pointing_hit"),
    "fixtrace.metrics.perturbation": ("PerturbationCurves", "area", "perturbation_curves", "salience_order"),
    "fixtrace.metrics.sanity": ("SanityStep", "cascade", "model_randomisation", "rank_correlation", "weighted_nodes"),
}
_WHERE = {name: module for module, names in _HOMES.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'fixtrace.metrics' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
