"""fixtrace.metrics against cases computed by hand."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from fixtrace.metrics import (
    area,
    box_found,
    cascade,
    centre_gaussian,
    energy_in_box,
    iou,
    localized,
    model_randomisation,
    perturbation_curves,
    pointing_hit,
    rank_correlation,
    salience_order,
    weighted_nodes,
)
from fixtrace.model.layer_graph import LayerGraph

# ---------------------------------------------------------------------------------------------- boxes


def test_iou_by_hand():
    assert iou((0, 0, 2, 2), (0, 0, 2, 2)) == 1.0
    # 2x2 and 2x2 overlapping in a 1x2 strip: 2 / (4 + 4 - 2)
    assert iou((0, 0, 2, 2), (1, 0, 3, 2)) == pytest.approx(2 / 6)
    assert iou((0, 0, 2, 2), (2, 0, 4, 2)) == 0.0  # touching edges share no pixel (x1 exclusive)
    assert iou((0, 0, 10, 10), (2, 2, 7, 7)) == pytest.approx(25 / 100)
    assert iou(None, (0, 0, 1, 1)) == 0.0


def test_localized_needs_the_class_and_iou_half():
    truth = [(0, 0, 10, 10)]
    half = (0, 0, 10, 5)  # IoU exactly 0.5
    assert box_found(half, truth) and localized(3, 3, half, truth)
    assert not localized(2, 3, half, truth)  # right box, wrong class
    assert not localized(3, 3, (0, 0, 10, 4), truth)  # IoU 0.4
    # several boxes: one is enough
    assert localized(1, 1, (20, 20, 30, 30), [(0, 0, 5, 5), (20, 20, 30, 31)])
    assert not localized(1, 1, None, truth)


def test_pointing_game_by_hand():
    heat = np.zeros((10, 10))
    heat[2, 7] = 1.0  # peak at x=7, y=2
    assert pointing_hit(heat, [(7, 2, 8, 3)])
    assert not pointing_hit(heat, [(0, 0, 7, 10)])  # x1 = 7 is outside
    # tolerance: the peak is 1 px right of the box's last column x=6, 2 px below its last row y=0 -> sqrt(5)
    assert not pointing_hit(heat, [(0, 0, 7, 1)], tolerance=2.2)
    assert pointing_hit(heat, [(0, 0, 7, 1)], tolerance=2.25)
    assert not pointing_hit(np.zeros((4, 4)), [(0, 0, 4, 4)])  # an empty map never hits
    ties = np.ones((4, 4))  # a flat map: its middle (render.peak), not the first maximum in row-major order
    assert pointing_hit(ties, [(1, 1, 3, 3)]) and not pointing_hit(ties, [(0, 0, 1, 1)])


def test_energy_in_box_by_hand():
    heat = np.zeros((4, 4))
    heat[0, 0], heat[3, 3], heat[1, 2] = 3.0, 1.0, -5.0  # negatives count as zero
    assert energy_in_box(heat, [(0, 0, 2, 2)]) == pytest.approx(0.75)
    # two overlapping boxes: a pixel is counted once
    assert energy_in_box(heat, [(0, 0, 2, 2), (0, 0, 4, 4)]) == pytest.approx(1.0)
    assert energy_in_box(np.zeros((3, 3)), [(0, 0, 1, 1)]) == 0.0


def test_centre_gaussian_peaks_in_the_middle_and_is_symmetric():
    heat = centre_gaussian((9, 5))
    assert heat.shape == (5, 9) and np.unravel_index(np.argmax(heat), heat.shape) == (2, 4)
    assert heat[2, 4] == pytest.approx(1.0)
    np.testing.assert_allclose(heat, heat[::-1, ::-1], rtol=1e-6)
    # one sigma (a quarter of the width) from the centre: exp(-1/2)
    wide = centre_gaussian((8, 1))
    assert wide[0, 5] / wide[0, 4] == pytest.approx(math.exp(-0.5 * ((5.5 - 4) ** 2 - (4.5 - 4) ** 2) / 4))


# ---------------------------------------------------------------------------------------------- deletion / insertion


def test_area_is_the_trapezoid_rule():
    assert area(np.array([0.0, 0.5, 1.0]), np.array([1.0, 0.0, 0.0])) == pytest.approx(0.25)
    assert area(np.linspace(0, 1, 5), np.ones(5)) == pytest.approx(1.0)


def test_salience_order_most_salient_first_and_random_among_ties():
    heat = np.array([[0.0, 3.0], [2.0, 0.0]])
    order = salience_order(heat)
    assert order[:2].tolist() == [1, 2]
    assert sorted(order[2:].tolist()) == [0, 3]
    flat = np.zeros((8, 8))
    assert salience_order(flat).tolist() != list(range(64))  # ties are not taken top to bottom


def brightness_of_left_half(photos: np.ndarray) -> np.ndarray:
    """A 'model' whose class-0 probability is the mean of the left half's red channel / 255."""
    p = photos[:, :, : photos.shape[2] // 2, 0].reshape(len(photos), -1).mean(axis=1) / 255.0
    return np.stack([p, 1 - p], axis=1)


def test_deletion_and_insertion_curves_by_hand():
    photo = np.full((2, 4, 3), 255, dtype=np.uint8)  # 8 pixels, 4 in the left half
    good = np.array([[4, 3, 0, 0], [2, 1, 0, 0]], dtype=float)  # the left half first
    curves = perturbation_curves(brightness_of_left_half, photo, good, target=0, steps=2)
    np.testing.assert_allclose(curves.fractions, [0, 0.5, 1])
    # deleting the 4 left pixels first: 1 -> 0 -> 0
    np.testing.assert_allclose(curves.deletion, [1, 0, 0])
    assert curves.deletion_auc == pytest.approx(0.25)
    # insertion starts from the blurred photo: a uniform photo blurs to itself, so 1 all along
    np.testing.assert_allclose(curves.insertion, [1, 1, 1])
    bad = good[:, ::-1]  # the right half first: deleting it changes nothing until the end
    worse = perturbation_curves(brightness_of_left_half, photo, bad, target=0, steps=2)
    np.testing.assert_allclose(worse.deletion, [1, 1, 0])
    assert worse.deletion_auc == pytest.approx(0.75)


def test_insertion_rises_as_the_salient_pixels_come_back():
    photo = np.zeros((64, 64, 3), dtype=np.uint8)
    photo[:, :32, 0] = 255  # a bright left half, dark right half
    heat = np.zeros((64, 64))
    heat[:, :32] = 1.0
    curves = perturbation_curves(brightness_of_left_half, photo, heat, target=0, steps=4)
    assert curves.insertion[0] < 1.0  # blurred: the bright half bleeds into the dark half
    assert curves.insertion[2] == pytest.approx(1.0)  # the whole left half is back at 50 %
    assert curves.insertion_auc > perturbation_curves(brightness_of_left_half, photo, heat[:, ::-1], 0, steps=4).insertion_auc


def test_perturbation_rejects_a_map_of_another_size():
    with pytest.raises(ValueError, match="map is 3x2"):
        perturbation_curves(brightness_of_left_half, np.zeros((4, 4, 3), np.uint8), np.zeros((2, 3)), 0)


# ---------------------------------------------------------------------------------------------- model randomisation


def test_rank_correlation_by_hand():
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    assert rank_correlation(a, a**3) == pytest.approx(1.0)  # monotone: same ranks
    assert rank_correlation(a, -a) == pytest.approx(-1.0)
    assert math.isnan(rank_correlation(a, np.zeros((2, 2))))


def two_layer_model() -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 1, 4, 4])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 3])
    weights = [
        numpy_helper.from_array(np.full((2, 1, 3, 3), 0.5, np.float32), "w1"),
        numpy_helper.from_array(np.array([1.0, -1.0], np.float32), "b1"),
        numpy_helper.from_array(np.arange(24, dtype=np.float32).reshape(8, 3), "w2"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c"], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Flatten", ["r"], ["f"], name="flat"),
        helper.make_node("MatMul", ["f", "w2"], ["y"], name="dense"),
    ]
    graph = helper.make_graph(nodes, "two", [x], [y], weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_cascade_reinitialises_from_the_top_down_and_keeps_the_scale():
    model = two_layer_model()
    nodes = weighted_nodes(LayerGraph.from_model(model))
    assert [n.name for n in nodes] == ["dense", "conv"]
    original = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    seen = []
    for layer, randomised in cascade(model, nodes, seed=1):
        now = {i.name: numpy_helper.to_array(i) for i in randomised.graph.initializer}
        changed = sorted(name for name in now if not np.array_equal(now[name], original[name]))
        seen.append((layer, changed))
        assert now["w2"].std() == pytest.approx(original["w2"].std(), rel=0.5)
    assert seen == [("dense", ["w2"]), ("conv", ["b1", "w1", "w2"])]
    # the input model is untouched
    assert np.array_equal(numpy_helper.to_array(model.graph.initializer[0]), original["w1"])


def test_model_randomisation_falls_for_a_map_that_reads_the_weights():
    model = two_layer_model()
    photo = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)

    def first_layer_weights_times_input(m: onnx.ModelProto) -> np.ndarray:
        """A 'map' that depends on the model: the conv weight's centre tap times the input."""
        w = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
        return photo[0, 0] * w["w1"][0, 0, 1, 1] + w["w2"][:4].sum(axis=1).reshape(2, 2).repeat(2, 0).repeat(2, 1)

    steps = model_randomisation(model, first_layer_weights_times_input, seed=3)
    assert [s.layer for s in steps] == ["", "dense", "conv"]
    assert steps[0].rank_correlation == pytest.approx(1.0)
    assert steps[-1].rank_correlation < 0.9
    only_ends = model_randomisation(model, first_layer_weights_times_input, seed=3, depths=(-1,))
    assert [s.layer for s in only_ends] == ["", "conv"] and only_ends[-1].rank_correlation == steps[-1].rank_correlation

    def blind(m: onnx.ModelProto) -> np.ndarray:  # an edge detector ignores the model: no fall
        return np.abs(np.diff(photo[0, 0] ** 2, axis=0))

    assert all(s.rank_correlation == pytest.approx(1.0) for s in model_randomisation(model, blind))


# ---------------------------------------------------------------------------------------------- on a trained model

FASHION = Path(__file__).resolve().parents[1] / "models" / "fashion"


# Spearman correlation the map must fall under once every layer is re-initialised. Grad-CAM loses
# its structure; fixations keep much of theirs: with random weights the argmax of window x weights
# still lands on bright pixels (the item on its dark canvas), as Adebayo et al. found for guided
# backprop. The benchmark reports both (bench/RESULTS.md); here each must at least fall.
FALLS_UNDER = {"fixations": 0.99, "gradcam": 0.7}


@pytest.mark.parametrize("method", list(FALLS_UNDER))
def test_randomising_a_trained_model_decorrelates_its_map(method):
    from fixtrace import Explainer

    model = onnx.load(FASHION / "resnet.onnx")
    image = FASHION / "samples" / "00002.png"
    target = Explainer(model, preset="raw", method=method, device="cpu").explain(image).target.index

    def map_of(m: onnx.ModelProto) -> np.ndarray:
        return Explainer(m, preset="raw", method=method, device="cpu").explain(image, target).heatmap

    steps = model_randomisation(model, map_of, seed=0, depths=(-1,))
    assert steps[0].rank_correlation == pytest.approx(1.0)
    assert steps[-1].rank_correlation < FALLS_UNDER[method], steps


def test_classifier_matches_the_explainers_probabilities():
    from fixtrace import Explainer
    from fixtrace.images.load import load_image
    from fixtrace.metrics import Classifier

    explainer = Explainer(FASHION / "inception.onnx", preset="raw", device="cpu")
    classifier = Classifier(explainer.graph, explainer.output.name, "raw", batch_size=3)
    names = sorted((FASHION / "samples").glob("*.png"))[:5]
    probabilities = classifier.probabilities(np.stack([load_image(p) for p in names]))
    assert probabilities.shape == (5, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-9)
    for p, row in zip(names, probabilities):
        best = explainer.explain(p).target
        assert int(np.argmax(row)) == best.index and row[best.index] == pytest.approx(best.probability, rel=1e-5)
