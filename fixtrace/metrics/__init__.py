"""Measurements that tell a good explanation from a bad one."""

from fixtrace.metrics.classifier import Classifier
from fixtrace.metrics.localization import Box, box_found, centre_gaussian, energy_in_box, iou, localized, pointing_hit
from fixtrace.metrics.perturbation import PerturbationCurves, area, perturbation_curves, salience_order
from fixtrace.metrics.sanity import SanityStep, cascade, model_randomisation, rank_correlation, weighted_nodes

__all__ = [
    "Box",
    "Classifier",
    "PerturbationCurves",
    "SanityStep",
    "area",
    "box_found",
    "cascade",
    "centre_gaussian",
    "energy_in_box",
    "iou",
    "localized",
    "model_randomisation",
    "perturbation_curves",
    "pointing_hit",
    "rank_correlation",
    "salience_order",
    "weighted_nodes",
]
