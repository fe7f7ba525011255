"""The explanatory graph of part patterns (Zhang et al., "Interpreting CNN Knowledge via an
Explanatory Graph", AAAI 2018): part patterns disentangled from the filters of chosen conv layers,
linked top-down by stable displacements. The names are imported on first use."""

from typing import TYPE_CHECKING

from fixtrace.lazy import lazy_exports

if TYPE_CHECKING:
    from fixtrace.graph_mining.build import explanatory_graph
    from fixtrace.graph_mining.graph import Edge, ExplanatoryGraph
    from fixtrace.graph_mining.graph_io import load, save
    from fixtrace.graph_mining.localize import Located, locate
    from fixtrace.graph_mining.mining import Settings

__all__ = ["Edge", "ExplanatoryGraph", "Located", "Settings", "explanatory_graph", "load", "locate", "save"]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "explanatory_graph": "fixtrace.graph_mining.build",
        "Edge": "fixtrace.graph_mining.graph",
        "ExplanatoryGraph": "fixtrace.graph_mining.graph",
        "load": "fixtrace.graph_mining.graph_io",
        "save": "fixtrace.graph_mining.graph_io",
        "Located": "fixtrace.graph_mining.localize",
        "locate": "fixtrace.graph_mining.localize",
        "Settings": "fixtrace.graph_mining.mining",
    },
)
