"""Evaluate explanation methods on a localization dataset (``fixtrace evaluate``)."""

from fixtrace.evaluate.dataset import BOXES_FILE, DatasetError, Item, read_dataset
from fixtrace.evaluate.methods import BASELINE, DEFAULT_METHODS, MethodSpec, parse_method
from fixtrace.evaluate.run import Evaluation, MapResult, MethodScores, evaluate, make_maps, score_map
from fixtrace.evaluate.table import save, to_csv, to_markdown

__all__ = [
    "BASELINE",
    "BOXES_FILE",
    "DEFAULT_METHODS",
    "DatasetError",
    "Evaluation",
    "Item",
    "MapResult",
    "MethodScores",
    "MethodSpec",
    "evaluate",
    "make_maps",
    "parse_method",
    "read_dataset",
    "save",
    "score_map",
    "to_csv",
    "to_markdown",
]
