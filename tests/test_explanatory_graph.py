"""The explanatory graph (fixtrace.graph_mining): a planted part pattern and its displacement are
recovered, the graph files round-trip, and the command line writes every file or refuses a layer
in one line."""

from __future__ import annotations

import json
import shutil

import networkx as nx
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from fixtrace.graph_mining import ExplanatoryGraph, Settings, explanatory_graph, load, locate, save
from tests.conftest import IMAGES, run_cli

SIDE = 64
#: The green part sits this far from the red one (rows, cols), in input pixels.
PLANTED = (0, 16)
LOW, UP = "low", "up"


def _planted_model() -> onnx.ModelProto:
    """Two conv layers: ``low`` (stride 1) fires on 3x3 red squares (filter 0) and green ones
    (filter 1) besides two random filters; ``up`` (after a 2x2 max pool) fires where ``low``'s
    red filter does (filter 0) besides a random filter."""
    rng = np.random.default_rng(0)
    w1 = np.zeros((4, 3, 3, 3), np.float32)
    w1[0] = np.array([1.0, -1.0, -1.0])[:, None, None]  # red minus the others, over a 3x3 box
    w1[1] = np.array([-1.0, 1.0, -1.0])[:, None, None]
    w1[2:] = rng.normal(0, 0.2, (2, 3, 3, 3))
    w2 = np.zeros((2, 4, 3, 3), np.float32)
    w2[0, 0, 1, 1] = 1.0
    w2[1] = rng.normal(0, 0.2, (4, 3, 3))
    nodes = [
        helper.make_node("Conv", ["image", "w1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], [LOW]),
        helper.make_node("MaxPool", [LOW], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "w2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], [UP]),
        helper.make_node("GlobalAveragePool", [UP], ["g"]),
        helper.make_node("Flatten", ["g"], ["scores"]),
    ]
    graph = helper.make_graph(
        nodes,
        "planted",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, SIDE, SIDE])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 2])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _photos(count: int, seed: int) -> tuple[list[np.ndarray], list[tuple[int, int]]]:
    """Grey noise, a red 3x3 square at a random place and a green one ``PLANTED`` from it."""
    rng = np.random.default_rng(seed)
    photos, places = [], []
    for _ in range(count):
        photo = np.repeat(rng.integers(0, 90, (SIDE, SIDE, 1)), 3, axis=2).astype(np.uint8)
        y, x = int(rng.integers(8, SIDE - 8)), int(rng.integers(6, SIDE - 8 - PLANTED[1]))
        photo[y - 1 : y + 2, x - 1 : x + 2] = (255, 0, 0)
        gy, gx = y + PLANTED[0], x + PLANTED[1]
        photo[gy - 1 : gy + 2, gx - 1 : gx + 2] = (0, 255, 0)
        photos.append(photo)
        places.append((y, x))
    return photos, places


@pytest.fixture(scope="module")
def planted() -> tuple[onnx.ModelProto, ExplanatoryGraph]:
    model = _planted_model()
    photos, _ = _photos(40, seed=1)
    settings = Settings(pattern_density=0.01, iterations=8, top_m=60, top_n=5)
    return model, explanatory_graph(model, photos, [UP, LOW], settings=settings, preset="raw")


def test_planted_part_pattern_and_displacement_recovered(planted):
    model, graph = planted
    low, up = graph.layers
    assert [low.layer, up.layer] == [LOW, UP]  # lowest first, whatever order they were given in
    # The strongest node of each planted filter follows its square on the photos where it fires.
    red = int(np.flatnonzero(up.filters == 0)[0])
    _, places = _photos(40, seed=1)
    where = np.array(places, np.float64)
    best = up.scores[:, red] > 0
    assert best.mean() > 0.8
    assert np.abs(up.positions[best, red] - where[best]).max() <= 2  # one cell of the upper map
    # An edge from the red node to the green node carries the planted displacement, within a cell.
    edges = [e for e in graph.edges if e.parent == red and low.filters[e.child] == 1]
    assert edges, "no edge from the planted upper node to a node of the green filter"
    edge = max(edges, key=lambda e: e.weight)
    assert np.allclose(edge.displacement, PLANTED, atol=2.0)
    assert edge.sigma < 2.0
    assert edge.weight > 0.5 and edge.child in np.flatnonzero(low.filters == 1)[:5]


def test_locate_finds_the_planted_parts_on_new_photos(planted):
    model, graph = planted
    photos, places = _photos(6, seed=7)
    found = locate(graph, photos, model=model)
    red = int(np.flatnonzero(graph.layers[1].filters == 0)[0])
    for located, (y, x) in zip(found, places):
        assert located.scores[1][red] > 0
        assert np.abs(located.positions[1][red] - (y, x)).max() <= 2


def test_graph_files_round_trip(planted, tmp_path):
    model, graph = planted
    written = save(graph, tmp_path, strips=2)
    names = {p.name for p in written}
    assert {"graph.json", "graph.graphml", "graph.jpg", "strips.jpg"} <= names
    back = load(tmp_path / "graph.json")
    assert back.to_json() | {"photos": 0} == graph.to_json() | {"photos": 0} | {
        "nodes": [n | {"top_photos": []} for n in graph.to_json()["nodes"]]
    }
    for a, b in zip(back.layers, graph.layers):
        assert np.array_equal(a.filters, b.filters) and np.allclose(a.mu, b.mu) and np.allclose(a.sigma, b.sigma)
    read = nx.read_graphml(tmp_path / "graph.graphml")
    built = graph.to_networkx()
    assert set(read.nodes) == set(built.nodes) and set(read.edges) == set(built.edges)
    node = next(iter(built.nodes))
    assert read.nodes[node] == pytest.approx(built.nodes[node])
    u, v = next(iter(built.edges))
    assert read.edges[u, v] == pytest.approx(built.edges[u, v])
    # The loaded graph locates as the mined one does.
    photos, _ = _photos(3, seed=9)
    again = locate(back, photos, model=model)
    first = locate(graph, photos, model=model)
    for a, b in zip(again, first):
        assert all(np.allclose(x, y) for x, y in zip(a.positions, b.positions))


def test_damaged_graph_file_is_refused(tmp_path):
    from fixtrace.errors import OptionError

    path = tmp_path / "graph.json"
    path.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(OptionError, match="not an explanatory graph"):
        load(path)


@pytest.mark.parametrize(
    ("layer", "said"),
    [("/features/features.13/Add_output_0", "is the output of Add node"), ("input", "is not a tensor the model computes")],
)
def test_cli_refuses_a_layer_that_is_not_a_conv_output(mobilenet_path, tmp_path, layer, said):
    done = run_cli("explanatory-graph", mobilenet_path, IMAGES, "--layers", layer, "--out", tmp_path, cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and said in lines[0] and lines[0].startswith("fixtrace: error:")
    assert "Traceback" not in done.stderr


def test_cli_writes_every_file_and_skips_a_corrupt_photo(mobilenet_path, tmp_path):
    folder = tmp_path / "photos"
    shutil.copytree(IMAGES, folder)
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    layers = "/features/features.13/conv/conv.2/Conv_output_0,/features/features.17/conv/conv.2/Conv_output_0"
    out = tmp_path / "out"
    done = run_cli(
        "explanatory-graph", mobilenet_path, folder, "--layers", layers, "--out", out, "--iterations", "3", "--top-m", "40",
        "--strips", "2", "--locate", IMAGES / "coffee.jpg", "--locate", folder / "broken.jpg", "--quiet", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "broken.jpg" in done.stderr and "skipped" in done.stderr and "Traceback" not in done.stderr
    assert "1 photo(s) given to --locate could not be read" in done.stderr
    assert [p.name for p in (out / "located").iterdir()] == ["000_coffee.jpg"]
    for name in ("graph.json", "graph.graphml", "graph.jpg", "strips.jpg"):
        assert (out / name).is_file(), name
    assert len(list((out / "strips").glob("*.jpg"))) == 4
    data = json.loads((out / "graph.json").read_text())
    assert data["photos"] == 3 and {n["layer"] for n in data["nodes"]} == {0, 1}
    assert data["edges"] and all(e["parent"].startswith("L1/") and e["child"].startswith("L0/") for e in data["edges"])


def test_cli_defaults_match_the_library():
    from fixtrace.cli import _parser
    from fixtrace.graph_mining import build, mining

    args = _parser().parse_args(["explanatory-graph", "m.onnx", "x", "--layers", "a"])
    assert (args.iterations, args.top_n, args.top_m, args.tau, args.top_images, args.peaks) == (
        mining.ITERATIONS, mining.TOP_N, mining.TOP_M, mining.TAU, mining.TOP_IMAGES, build.PEAKS,
    )  # fmt: skip
