"""t-SNE of CNN codes (``fixtrace tsne``, ``fixtrace.toolbox.tsne``): the codes are onnxruntime's
values of the chosen tensor, the default tensor is the input of the final dense layer (checked on
the raw ONNX graph), the embedding is seeded, the files round-trip, and the grid picture puts
each thumbnail in a cell of its own, by a minimum-cost assignment (checked by brute force)."""

from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import onnx
import pytest
from PIL import Image
from test_layouts import small_cnn, to_channels_last
from test_rules_oracle import build

from conftest import MODELS, ROOT, run_cli, run_exposing
from fixtrace.errors import ImageError, ModelError, OptionError
from fixtrace.model.layer_graph import LayerGraph
from fixtrace.toolbox.codes import default_code_layer, read_codes
from fixtrace.toolbox.tsne import embed, read_csv, usable_perplexity
from fixtrace.toolbox.tsne_pictures import GUTTER, grid_cells, grid_picture, scatter_picture

FASHION = MODELS / "fashion"
LABELS = FASHION / "labels.txt"
SAMPLES = sorted((FASHION / "samples").glob("*.png"))
NAMES = [line.strip() for line in LABELS.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def canvases(tmp_path_factory):
    """The 12 sample canvases and their mirror images: 24 PNGs in one folder."""
    folder = tmp_path_factory.mktemp("canvases")
    for path in SAMPLES:
        image = Image.open(path)
        image.save(folder / path.name)
        image.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(folder / f"flipped_{path.name}")
    return sorted(folder.glob("*.png"))


@pytest.fixture(scope="module")
def embedded(canvases):
    pytest.importorskip("sklearn", reason="t-SNE needs scikit-learn (pip install 'fixtrace[tsne]')")
    return embed(FASHION / "resnet.onnx", canvases, preset="raw", labels=LABELS, seed=0, threads=1)


def _oracle(model_path, paths, tensor):
    """(the tensor's values, the logits) from a separate onnxruntime session exposing ``tensor``,
    on inputs built here: the grey canvases are at the input size, so the raw preset is x / 255."""
    model = onnx.load(model_path)
    batch = np.stack([np.asarray(Image.open(p).convert("L"), np.float32)[None] / 255 for p in paths])
    values = run_exposing(model, model.graph.input[0].name, batch, keep=lambda name: name == tensor)
    return values[tensor], values[model.graph.output[0].name]


def _dense_input_by_hand(model_path):
    """The tensor that feeds the graph's last Gemm, read through Flatten on the raw protobuf, and
    how many Gemms there are."""
    graph = onnx.load(model_path).graph
    producer = {out: node for node in graph.node for out in node.output}
    gemms = [node for node in graph.node if node.op_type == "Gemm"]
    last = producer[graph.output[0].name]
    assert last.op_type == "Gemm"
    tensor = last.input[0]
    while producer[tensor].op_type == "Flatten":
        tensor = producer[tensor].input[0]
    return tensor, producer[tensor].op_type, len(gemms)


@pytest.mark.parametrize(
    ("name", "feeds", "gemms"), [("vgg", "Relu", 2), ("resnet", "GlobalAveragePool", 1), ("inception", "GlobalAveragePool", 1)]
)
def test_the_default_codes_are_the_input_of_the_final_dense_layer(canvases, name, feeds, gemms):
    path = FASHION / f"{name}.onnx"
    tensor, op, count = _dense_input_by_hand(path)
    assert (op, count) == (feeds, gemms)  # vgg: the last of two FCs reads a ReLU; the others a GAP
    codes = read_codes(path, canvases, preset="raw", labels=LABELS, batch_size=5)
    assert codes.layer.name == tensor
    assert "final dense layer" in codes.layer.reason and (op != "GlobalAveragePool" or "pooled vector" in codes.layer.reason)
    want, logits = _oracle(path, canvases, tensor)
    assert codes.values.dtype == np.float32 and codes.values.shape == (len(canvases), want[0].size)
    np.testing.assert_allclose(codes.values, want.reshape(len(canvases), -1), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(codes.predicted, logits.argmax(axis=1))
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(codes.probability, (e / e.sum(axis=1, keepdims=True)).max(axis=1), rtol=1e-5)
    assert codes.sources == canvases and codes.indices == list(range(len(canvases)))


def test_a_rank_4_layer_is_flattened_or_pooled_in_either_layout(canvases):
    layer = "/features/features.4/relu/Relu_output_0"
    want, _ = _oracle(FASHION / "resnet.onnx", canvases[:6], layer)
    flat = read_codes(FASHION / "resnet.onnx", canvases[:6], layer, preset="raw")
    pooled = read_codes(FASHION / "resnet.onnx", canvases[:6], layer, reduction="pool", preset="raw")
    assert flat.layer.reason == "asked for with --layer"
    np.testing.assert_allclose(flat.values, want.reshape(6, -1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(pooled.values, want.mean(axis=(2, 3)), rtol=1e-5, atol=1e-5)
    # The same network written channels-last: pooling reads the channel axis the graph establishes.
    photos = [np.random.default_rng(k).integers(0, 256, (16, 16, 3), dtype=np.uint8) for k in range(5)]
    nchw, nhwc = small_cnn(), to_channels_last(small_cnn())
    first = read_codes(nchw, photos, "r3", reduction="pool", preset="raw")
    last = read_codes(nhwc, photos, "r3", reduction="pool", preset="raw")
    np.testing.assert_allclose(last.values, first.values, rtol=1e-5, atol=1e-6)
    assert read_codes(nhwc, photos, preset="raw").layer.name == "g"  # ReduceMean over rows and columns
    with pytest.raises(OptionError, match="--pool averages a rank-4"):
        read_codes(nchw, photos, "f", reduction="pool", preset="raw")
    with pytest.raises(OptionError, match="not a tensor the model computes"):
        read_codes(nchw, photos, "nope", preset="raw")


def test_a_bad_labels_file_or_reduction_fails_before_any_image(tmp_path):
    def never():
        raise AssertionError("an image was read")
        yield

    with pytest.raises(OptionError, match="labels file"):
        read_codes(FASHION / "vgg.onnx", never(), preset="raw", labels=tmp_path / "missing.txt")
    with pytest.raises(OptionError, match="unknown reduction 'mean'"):
        read_codes(FASHION / "vgg.onnx", never(), reduction="mean")


def _headless() -> onnx.ModelProto:
    """The small CNN without its dense layer: the pooled map is the output (a NiN-style head)."""
    cnn = small_cnn()
    nodes = [n for n in cnn.graph.node if n.op_type != "Gemm"]
    return build(nodes, ["N", 3, 16, 16], ["f"], {i.name: onnx.numpy_helper.to_array(i) for i in cnn.graph.initializer})


def test_an_unrecognised_head_asks_for_a_layer():
    with pytest.raises(ModelError, match=r"cannot recognise the classifier head.*--layer"):
        default_code_layer(LayerGraph.from_model(_headless()), "f")


def test_the_embedding_is_seeded_and_round_trips(embedded, canvases, tmp_path):
    assert len(embedded) == 24 and embedded.coords.shape == (24, 2) and embedded.coords.dtype == np.float32
    assert embedded.pca is None  # 64 values: no PCA
    assert embedded.perplexity == usable_perplexity(30, 24) == 23 / 3 and "too high for 24 images" in embedded.notes[0]
    again = embed(FASHION / "resnet.onnx", canvases, preset="raw", labels=LABELS, seed=0, batch_size=7, threads=1)
    np.testing.assert_array_equal(again.codes.values, embedded.codes.values)
    np.testing.assert_array_equal(again.coords, embedded.coords)
    other = embed(FASHION / "resnet.onnx", canvases, preset="raw", labels=LABELS, seed=1, perplexity=5, threads=1)
    assert other.perplexity == 5 and not other.notes and not np.allclose(other.coords, embedded.coords)
    written = embedded.save(tmp_path)
    assert [p.name for p in written] == ["codes.npy", "coords.npy", "tsne.csv"]
    np.testing.assert_array_equal(np.load(tmp_path / "codes.npy"), embedded.codes.values)
    np.testing.assert_array_equal(np.load(tmp_path / "coords.npy"), embedded.coords)
    rows = read_csv(tmp_path / "tsne.csv")
    assert [r["source"] for r in rows] == [str(p) for p in canvases]
    np.testing.assert_array_equal([[float(r["x"]), float(r["y"])] for r in rows], embedded.coords)
    assert [int(r["class"]) for r in rows] == embedded.codes.predicted.tolist()
    assert [r["name"] for r in rows] == [NAMES[k] for k in embedded.codes.predicted]
    np.testing.assert_allclose([float(r["probability"]) for r in rows], embedded.codes.probability, atol=1e-6)


def test_mirror_images_stay_close(embedded):
    """A sanity check of the embedding itself: a canvas and its mirror are more alike to the network
    than two random canvases, so the median distance to the mirror is below the median of all pairs."""
    xy = embedded.coords.astype(np.float64)
    names = [p.name.removeprefix("flipped_") for p in embedded.codes.sources]
    pairs = [(i, j) for i, j in itertools.combinations(range(len(names)), 2) if names[i] == names[j]]
    assert len(pairs) == 12
    mirror = np.median([np.linalg.norm(xy[i] - xy[j]) for i, j in pairs])
    everyone = np.median([np.linalg.norm(xy[i] - xy[j]) for i, j in itertools.combinations(range(len(xy)), 2)])
    assert mirror < everyone


def _cost(coords, side, shown, cells):
    low, high = coords.min(axis=0), coords.max(axis=0)
    unit = (coords - low) / (high - low)
    rows, columns = np.divmod(cells, side)
    return float((((np.stack([columns, rows], axis=1) + 0.5) / side - unit[shown]) ** 2).sum())


def test_grid_cells_are_a_minimum_cost_assignment_by_brute_force():
    rng = np.random.default_rng(0)
    coords = rng.normal(size=(5, 2))
    shown, cells = grid_cells(coords, 3)  # 9 cells, 5 points: every point placed
    assert sorted(shown.tolist()) == list(range(5)) and len(set(cells.tolist())) == 5
    best = min(_cost(coords, 3, np.arange(5), np.array(c)) for c in itertools.permutations(range(9), 5))
    assert _cost(coords, 3, shown, cells) == pytest.approx(best)
    coords = rng.normal(size=(7, 2))
    shown, cells = grid_cells(coords, 2)  # 4 cells, 7 points: each cell takes a different point
    assert sorted(cells.tolist()) == [0, 1, 2, 3] and len(set(shown.tolist())) == 4
    best = min(_cost(coords, 2, np.array(p), np.arange(4)) for p in itertools.permutations(range(7), 4))
    assert _cost(coords, 2, shown[np.argsort(cells)], np.arange(4)) == pytest.approx(best)
    with pytest.raises(OptionError, match=r"grid \(--grid\) must be between 1 and 50, not 0"):
        grid_cells(coords, 0)


def test_the_grid_picture_has_one_thumbnail_per_cell(embedded):
    thumb, step = 16, 16 + GUTTER
    picture, shown, cells = grid_picture(embedded, 5, thumb)
    assert picture.size == (5 * step + GUTTER,) * 2 and len(set(cells.tolist())) == len(shown) == 24
    pixels = np.asarray(picture, dtype=np.int16)
    painted = np.zeros(pixels.shape[:2], dtype=int)
    for k, cell in zip(shown.tolist(), cells.tolist()):
        row, column = divmod(cell, 5)
        y, x = GUTTER + row * step, GUTTER + column * step
        want = np.asarray(Image.open(embedded.codes.sources[k]).convert("RGB").resize((thumb, thumb), Image.Resampling.BILINEAR))
        assert np.abs(pixels[y : y + thumb, x : x + thumb] - want).mean() < 2, k  # each cell holds its own image, whole
        painted[y : y + thumb, x : x + thumb] += 1
    assert painted.max() == 1  # no two thumbnails overlap
    assert (pixels[painted == 0] == 255).all()  # the gutters and the one empty cell are white


def test_the_scatter_has_a_colour_per_class_and_a_legend(embedded):
    picture = np.asarray(scatter_picture(embedded, size=300))
    assert picture.shape[1] > 300 and picture.shape[0] >= 300
    colours = {tuple(c) for c in picture.reshape(-1, 3)}
    assert (31, 119, 180) in colours  # the most frequent class's colour


def test_too_few_images_are_refused(canvases):
    pytest.importorskip("sklearn")
    with pytest.raises(ImageError, match="at least 5 readable images, got 4"):
        embed(FASHION / "vgg.onnx", canvases[:4], preset="raw")


def test_cli_writes_the_codes_positions_and_pictures(canvases, tmp_path):
    pytest.importorskip("sklearn")
    out = tmp_path / "out"
    done = run_cli(
        "tsne",
        FASHION / "vgg.onnx",
        canvases[0].parent,
        "--preset",
        "raw",
        "--labels",
        LABELS,
        "--out",
        out,
        "--seed",
        3,
        "--threads",
        1,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert (
        "codes: '/classifier/classifier.2/Relu_output_0' (128 values per image): the input of the final dense layer"
        in done.stdout
    )
    assert "perplexity 7.67" in done.stdout and "grid.jpg shows 24 on 5x5 cells" in done.stdout
    assert "Traceback" not in done.stderr
    assert len(read_csv(out / "tsne.csv")) == 24 and np.load(out / "codes.npy").shape == (24, 128)
    assert Image.open(out / "grid.jpg").format == "JPEG" and Image.open(out / "scatter.png").size[0] > 800


def test_cli_skips_a_corrupt_image_and_counts_it(canvases, tmp_path):
    pytest.importorskip("sklearn")
    folder = tmp_path / "photos"
    folder.mkdir()
    for path in canvases[:6]:
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    out = tmp_path / "out"
    done = run_cli(
        "tsne", FASHION / "inception.onnx", folder, "--preset", "raw", "--out", out, "--grid", 2, "--threads", 1, cwd=ROOT
    )
    assert done.returncode == 1, done.stderr
    notes = [line for line in done.stderr.splitlines() if line.startswith("fixtrace:") and "broken.png" in line]
    assert len(notes) == 1 and notes[0].startswith("fixtrace: error: ") and notes[0].endswith("; skipped")
    assert "6 of 7 images" in done.stdout and "grid.jpg shows 4 on 2x2 cells" in done.stdout
    assert len(read_csv(out / "tsne.csv")) == 6 and "Traceback" not in done.stderr


def test_cli_bad_layer_is_one_line(canvases, tmp_path):
    done = run_cli(
        "tsne",
        FASHION / "resnet.onnx",
        canvases[0].parent,
        "--layer",
        "/pool/GlobalAveragePool_output",
        "--out",
        tmp_path,
        cwd=ROOT,
    )
    assert done.returncode == 2 and done.stderr.strip().splitlines()[-1] == (
        "fixtrace: error: layer '/pool/GlobalAveragePool_output' is not a tensor the model computes (closest: /pool/GlobalAveragePool_output_0); "
        "`fixtrace layers MODEL` lists them"
    )


def test_cli_too_few_images_and_no_images(canvases, tmp_path):
    few = tmp_path / "few"
    few.mkdir()
    for path in canvases[:3]:
        (few / path.name).write_bytes(path.read_bytes())
    done = run_cli("tsne", FASHION / "resnet.onnx", few, "--preset", "raw", "--out", tmp_path / "out", cwd=ROOT)
    assert done.returncode == 2 and "fixtrace: error: t-SNE needs at least 5 readable images, got 3" in done.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    done = run_cli("tsne", FASHION / "resnet.onnx", empty, "--out", tmp_path / "out", cwd=ROOT)
    assert done.returncode == 2 and "fixtrace: error: no images in folder" in done.stderr and "Traceback" not in done.stderr


def test_cli_without_scikit_learn_says_what_to_install(canvases, tmp_path):
    """fixtrace never imports scikit-learn on import; the verb says what to install, in one line."""
    code = (
        "import sys, fixtrace, fixtrace.cli, fixtrace.toolbox.tsne, fixtrace.toolbox.tsne_pictures; "
        "assert 'sklearn' not in sys.modules; sys.modules['sklearn'] = None; sys.exit(fixtrace.cli.main(sys.argv[1:]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, "tsne", str(FASHION / "resnet.onnx"), str(canvases[0].parent), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert done.returncode == 2 and done.stderr.strip() == (
        "fixtrace: error: t-SNE needs scikit-learn, which is not installed here: pip install 'fixtrace[tsne]'"
    )


def test_an_unrecognised_head_is_one_line_on_the_command_line(canvases, tmp_path):
    path = tmp_path / "nin.onnx"
    onnx.save(_headless(), path)
    done = run_cli("tsne", path, canvases[0].parent, "--preset", "raw", "--out", tmp_path / "out", cwd=ROOT)
    assert done.returncode == 2 and "cannot recognise the classifier head" in done.stderr and "--layer" in done.stderr
    assert "Traceback" not in done.stderr
