"""The explanatory graph: its nodes (part patterns) layer by layer, its edges with their
displacement priors, and its plain forms (JSON, a networkx graph)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fixtrace.errors import OptionError
from fixtrace.graph_mining.mining import LayerNodes, Settings
from fixtrace.images.geometry import Geometry
from fixtrace.model.receptive_field import ReceptiveField

FORMAT = "fixtrace-explanatory-graph/1"


@dataclass(frozen=True)
class Edge:
    """A parent (layer above) to child link.

    Attributes:
        layer: the child's layer index (0: the lowest layer mined).
        child, parent: node indices in their layers.
        weight: how steadily the two move together over the photos, in [0, 1].
        displacement: (row, col) mean offset of the child from the parent, input pixels.
        sigma: the offset's standard deviation (pixels).
    """

    layer: int
    child: int
    parent: int
    weight: float
    displacement: tuple[float, float]
    sigma: float


@dataclass
class ExplanatoryGraph:
    """Part patterns of chosen conv layers and how they hang together.

    Attributes:
        model: the model as given (a path's text, or ``"<model>"``).
        preset: the preprocessing used (``Preset.to_dict``).
        layers: each layer's nodes, lowest layer first (the graph's top is the last).
        fields: each layer's receptive field.
        edges: parent-child edges.
        peaks: peaks kept per filter map and photo.
        settings: the mining parameters.
        photos: the photos mined (their names or paths).
        geometries: how each photo was cut to the model input (not saved).
        sources: the photos as given (not saved; the strips cut their patches from them).
    """

    model: str
    preset: dict[str, Any]
    layers: list[LayerNodes]
    fields: list[ReceptiveField]
    edges: list[Edge]
    peaks: int
    settings: Settings
    photos: list[str] = field(default_factory=list)
    geometries: list[Geometry] = field(default_factory=list, repr=False)
    sources: list[Any] = field(default_factory=list, repr=False)

    def node_id(self, layer: int, node: int) -> str:
        """``L<layer>/f<filter>/p<pattern>``."""
        nodes = self.layers[layer]
        return f"L{layer}/f{int(nodes.filters[node])}/p{int(nodes.patterns[node])}"

    def top_photos(self, layer: int, node: int, count: int) -> list[tuple[int, float, np.ndarray]]:
        """(photo index, score, position) of the ``count`` photos where the node scores highest."""
        scores = self.layers[layer].scores
        if scores.shape[0] == 0:
            return []
        order = np.argsort(-scores[:, node], kind="stable")[:count]
        return [(int(i), float(scores[i, node]), self.layers[layer].positions[i, node]) for i in order if scores[i, node] > 0]

    def to_json(self) -> dict[str, Any]:
        layers, nodes = [], []
        for index, (mined, rf) in enumerate(zip(self.layers, self.fields)):
            layers.append(
                {
                    "index": index,
                    "name": mined.layer,
                    "field": {
                        "size": list(rf.size),
                        "stride": list(rf.stride),
                        "offset": list(rf.offset),
                        "image": list(rf.image),
                    },
                    "scale": [float(v) for v in mined.scale],
                }
            )
            for v in range(len(mined)):
                nodes.append(
                    {
                        "id": self.node_id(index, v),
                        "layer": index,
                        "layer_name": mined.layer,
                        "filter": int(mined.filters[v]),
                        "pattern": int(mined.patterns[v]),
                        "mu": [float(x) for x in mined.mu[v]],
                        "sigma": float(mined.sigma[v]),
                        "mean_position": [float(x) for x in mined.mean_position[v]],
                        "support": float(mined.support[v]),
                        "strength": float(mined.strength[v]),
                        "top_photos": [
                            {
                                "photo": self.photos[i] if i < len(self.photos) else f"#{i}",
                                "score": s,
                                "position": [float(x) for x in p],
                            }
                            for i, s, p in self.top_photos(index, v, self.settings.top_images)
                        ],
                    }
                )
        edges = [
            {
                "parent": self.node_id(e.layer + 1, e.parent),
                "child": self.node_id(e.layer, e.child),
                "weight": e.weight,
                "displacement": list(e.displacement),
                "sigma": e.sigma,
            }
            for e in self.edges
        ]
        return {
            "format": FORMAT,
            "model": self.model,
            "preset": self.preset,
            "peaks": self.peaks,
            "settings": vars(self.settings),
            "photos": len(self.photos),
            "layers": layers,
            "nodes": nodes,
            "edges": edges,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str = "the graph") -> ExplanatoryGraph:
        """The graph ``to_json`` wrote (its per-photo positions are not saved).

        Raises:
            OptionError: not such a graph.
        """
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise OptionError(f"{where} is not an explanatory graph ({FORMAT} JSON)")
        try:
            return _from_json(data)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise OptionError(f"{where} is a damaged explanatory graph: {type(exc).__name__}: {exc}") from None

    def to_networkx(self) -> Any:
        """A ``networkx.DiGraph``, parent to child, with plain attributes (GraphML writes them)."""
        import networkx as nx

        graph = nx.DiGraph(model=self.model)
        for entry in self.to_json()["nodes"]:
            graph.add_node(
                entry["id"],
                layer=entry["layer"],
                layer_name=entry["layer_name"],
                filter=entry["filter"],
                pattern=entry["pattern"],
                mu_row=entry["mu"][0],
                mu_col=entry["mu"][1],
                sigma=entry["sigma"],
                row=entry["mean_position"][0],
                col=entry["mean_position"][1],
                support=entry["support"],
                strength=entry["strength"],
            )
        for e in self.edges:
            graph.add_edge(
                self.node_id(e.layer + 1, e.parent),
                self.node_id(e.layer, e.child),
                weight=e.weight,
                d_row=e.displacement[0],
                d_col=e.displacement[1],
                sigma=e.sigma,
            )
        return graph


def _from_json(data: dict[str, Any]) -> ExplanatoryGraph:
    layers = sorted(data["layers"], key=lambda entry: entry["index"])
    by_layer: list[list[dict]] = [[] for _ in layers]
    for entry in data["nodes"]:
        by_layer[int(entry["layer"])].append(entry)
    index: dict[str, tuple[int, int]] = {}
    for level, group in enumerate(by_layer):
        for k, entry in enumerate(group):
            index[entry["id"]] = (level, k)
    settings = Settings(**data["settings"])
    edges = []
    parents: list[list[list[tuple[int, float]]]] = [[[] for _ in group] for group in by_layer]
    for entry in data["edges"]:
        level, child = index[entry["child"]]
        _, parent = index[entry["parent"]]
        row, col = (float(x) for x in entry["displacement"])
        edges.append(Edge(level, child, parent, float(entry["weight"]), (row, col), float(entry["sigma"])))
        parents[level][child].append((parent, float(entry["weight"])))
    mined, fields = [], []
    for level, (about, group) in enumerate(zip(layers, by_layer)):
        rf = about["field"]
        fields.append(
            ReceptiveField(
                (int(rf["size"][0]), int(rf["size"][1])),
                (int(rf["stride"][0]), int(rf["stride"][1])),
                (float(rf["offset"][0]), float(rf["offset"][1])),
                (int(rf["image"][0]), int(rf["image"][1])),
            )
        )
        width = max([len(p) for p in parents[level]] + [0])
        links = np.full((len(group), width), -1, np.int64)
        weights = np.zeros((len(group), width), np.float32)
        for k, found in enumerate(parents[level]):
            for slot, (parent, weight) in enumerate(found):
                links[k, slot], weights[k, slot] = parent, weight
        count = len(group)
        mined.append(
            LayerNodes(
                layer=str(about["name"]),
                stride=(float(rf["stride"][0]), float(rf["stride"][1])),
                scale=np.array(about["scale"], np.float32),
                filters=np.array([n["filter"] for n in group], np.int64),
                patterns=np.array([n["pattern"] for n in group], np.int64),
                mu=np.array([n["mu"] for n in group], np.float32).reshape(count, 2),
                sigma=np.array([n["sigma"] for n in group], np.float32),
                mean_position=np.array([n["mean_position"] for n in group], np.float32).reshape(count, 2),
                support=np.array([n["support"] for n in group], np.float32),
                strength=np.array([n["strength"] for n in group], np.float32),
                positions=np.zeros((0, count, 2), np.float32),
                scores=np.zeros((0, count), np.float32),
                parents=links,
                weights=weights,
            )
        )
    return ExplanatoryGraph(str(data["model"]), dict(data["preset"]), mined, fields, edges, int(data["peaks"]), settings)


def model_name(model: Any) -> str:
    """The text a graph records for its model: a path as given, else ``"<model>"``."""
    return str(Path(model)) if isinstance(model, (str, os.PathLike)) else "<model>"
