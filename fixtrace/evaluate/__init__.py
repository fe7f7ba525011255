"""Evaluate explanation methods on a localization dataset (``fixtrace evaluate``).

Names are imported on first use, so that the command line's parser reads ``evaluate.methods``
without the metrics and the models.
"""

from typing import TYPE_CHECKING

from fixtrace.lazy import lazy_exports

if TYPE_CHECKING:
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

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "BOXES_FILE": "fixtrace.evaluate.dataset",
        "DatasetError": "fixtrace.evaluate.dataset",
        "Item": "fixtrace.evaluate.dataset",
        "read_dataset": "fixtrace.evaluate.dataset",
        "BASELINE": "fixtrace.evaluate.methods",
        "DEFAULT_METHODS": "fixtrace.evaluate.methods",
        "MethodSpec": "fixtrace.evaluate.methods",
        "parse_method": "fixtrace.evaluate.methods",
        "Evaluation": "fixtrace.evaluate.run",
        "MapResult": "fixtrace.evaluate.run",
        "MethodScores": "fixtrace.evaluate.run",
        "evaluate": "fixtrace.evaluate.run",
        "make_maps": "fixtrace.evaluate.run",
        "score_map": "fixtrace.evaluate.run",
        "save": "fixtrace.evaluate.table",
        "to_csv": "fixtrace.evaluate.table",
        "to_markdown": "fixtrace.evaluate.table",
    },
)
