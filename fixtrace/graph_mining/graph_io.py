"""Writing an explanatory graph's files and reading its JSON back."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

from fixtrace.errors import OptionError
from fixtrace.files import make_folder, safe_name, write_atomic, write_json_atomic
from fixtrace.graph_mining.graph import ExplanatoryGraph

#: Patches per node strip.
STRIP = 6


def save(graph: ExplanatoryGraph, folder: str | os.PathLike, *, strips: int = 12, drawn: int = 12) -> list[Path]:
    """Write ``graph.json``, ``graph.graphml``, ``graph.jpg`` (the layered drawing), ``strips.jpg``
    (the strongest nodes' patches) and ``strips/<node>.jpg`` for the ``strips`` strongest nodes of
    each layer.

    Returns:
        The files written.

    Raises:
        OutputError: a write failed.
    """
    import networkx as nx

    from fixtrace.graph_mining.picture import draw_graph, strip, strips_overview

    folder = make_folder(folder)
    paths = [folder / "graph.json", folder / "graph.graphml", folder / "graph.jpg", folder / "strips.jpg"]
    write_json_atomic(paths[0], graph.to_json(), indent=1)
    write_atomic(paths[1], lambda p: nx.write_graphml(graph.to_networkx(), p))
    picture = draw_graph(graph, drawn)
    write_atomic(paths[2], lambda p: picture.save(p, format="JPEG", quality=88))
    overview = strips_overview(graph, min(drawn, 4), STRIP)
    write_atomic(paths[3], lambda p: overview.save(p, format="JPEG", quality=85))
    if graph.sources and strips:
        place = make_folder(folder / "strips")
        for k, nodes in enumerate(graph.layers):
            for v in range(min(strips, len(nodes))):
                path = place / f"{safe_name(graph.node_id(k, v).replace('/', '_'))}.jpg"
                image = strip(graph, k, v, STRIP)
                write_atomic(path, functools.partial(_jpeg, image, quality=85))
                paths.append(path)
    return paths


def _jpeg(image: Any, path: Path, quality: int) -> None:
    image.save(path, format="JPEG", quality=quality)


def load(path: str | os.PathLike) -> ExplanatoryGraph:
    """A graph from the ``graph.json`` that ``save`` wrote.

    Raises:
        OptionError: the file cannot be read or is not such a graph.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise OptionError(f"cannot read the graph {path}: {exc}") from None
    return ExplanatoryGraph.from_json(data, str(path))
