"""fixtrace.evaluate: the dataset format, method specs, scoring, and `fixtrace evaluate` end to end."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, run_cli
from fixtrace.errors import FixtraceError
from fixtrace.evaluate import DatasetError, MapResult, evaluate, parse_method, read_dataset, score_map, to_markdown
from fixtrace.evaluate.dataset import Item

FASHION = ROOT / "models" / "fashion"
SAMPLES = FASHION / "samples"


def write_boxes(folder: Path, rows: list[list], header=("image", "label", "x0", "y0", "x1", "y1")) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "boxes.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return folder


# ---------------------------------------------------------------------------------------------- dataset format


def test_read_dataset_groups_boxes_per_image_in_order(tmp_path):
    folder = write_boxes(tmp_path / "d", [["b.png", 3, 0, 0, 4, 4], ["a.png", 1, 1, 1, 2, 2], ["b.png", 3, 5, 5, 9, 9]])
    items = read_dataset(folder)
    assert [i.image.name for i in items] == ["b.png", "a.png"]
    assert items[0] == Item(folder / "b.png", 3, ((0, 0, 4, 4), (5, 5, 9, 9)))


@pytest.mark.parametrize(
    "rows, header, message",
    [
        ([["a.png", "cat", 0, 0, 1, 1]], None, "whole numbers"),
        ([["a.png", 1, 5, 0, 5, 3]], None, "empty or negative"),
        ([["a.png", 1, 0, 0, 2, 2], ["a.png", 2, 0, 0, 2, 2]], None, "has label 2 here but 1 above"),
        ([["", 1, 0, 0, 2, 2]], None, "no image name"),
        ([["a.png", 1, 0, 0, 2]], ("image", "label", "x0", "y0", "x1"), "lacks y1"),
        ([], None, "has no rows"),
    ],
)
def test_malformed_boxes_file_names_the_line(tmp_path, rows, header, message):
    folder = write_boxes(tmp_path / "d", rows, header or ("image", "label", "x0", "y0", "x1", "y1"))
    with pytest.raises(DatasetError, match=message):
        read_dataset(folder)


def test_missing_folder_or_boxes_file(tmp_path):
    with pytest.raises(DatasetError, match="is not a folder"):
        read_dataset(tmp_path / "nope")
    with pytest.raises(DatasetError, match=r"boxes\.csv is missing"):
        read_dataset(tmp_path)


# ---------------------------------------------------------------------------------------------- method specs


def test_parse_method_flags():
    spec = parse_method("fixations:centre:all-points:sigma=0.05:box=0.3")
    assert (spec.method, spec.conv_location, spec.outlier_removal, spec.sigma, spec.box_threshold) == (
        "fixations",
        "centre",
        False,
        0.05,
        0.3,
    )
    assert parse_method("gradcam:ge").ge and parse_method("centre-gaussian").is_baseline


@pytest.mark.parametrize(
    "text, message",
    [
        ("lime", "unknown method 'lime'"),
        ("gradcam:centre", "does not apply to gradcam"),
        ("fixations:fast", "unknown flag 'fast'"),
        ("fixations:box=2", r"box= takes a fraction in \(0, 1\]"),
        ("centre-gaussian:ge", "does not apply"),
    ],
)
def test_parse_method_refuses(text, message):
    with pytest.raises(FixtraceError, match=message):
        parse_method(text)


# ---------------------------------------------------------------------------------------------- scoring one map


def test_score_map_by_hand():
    heat = np.zeros((20, 20), np.float32)
    heat[5:10, 5:15] = 1.0  # box (5, 5, 15, 10) at any threshold
    item = Item(Path("x.png"), 4, ((5, 5, 15, 12),))  # IoU 50 / 70
    result = MapResult(item, np.zeros((20, 20, 3), np.uint8), 4, heat, None, 0.0)
    scores = score_map(result, 0.5)
    assert scores.box_found and scores.localized and scores.pointing and scores.energy == pytest.approx(1.0)
    assert not score_map(result, 0.5, iou_threshold=0.75).box_found
    wrong_class = MapResult(item, result.photo, 3, heat, None, 0.0)
    assert score_map(wrong_class).box_found and not score_map(wrong_class).localized


# ---------------------------------------------------------------------------------------------- end to end on a trained model


def test_evaluate_on_the_bundled_samples_scores_every_method():
    items = read_dataset(SAMPLES)
    specs = [parse_method(m) for m in ("fixations", "gradcam", "cam", "centre-gaussian")]
    evaluation = evaluate(FASHION / "vgg.onnx", items, specs, preset="raw", perturbation=2, steps=4, device="cpu")
    rows = {r.label: r for r in evaluation.rows}
    assert rows["fixations"].images == len(items) == 12 and rows["fixations"].perturbed == 2
    assert 0 <= rows["fixations"].loc_error <= 100 and 0 <= rows["gradcam"].energy <= 100
    assert rows["cam"].unavailable and rows["cam"].images == 0  # VGG's head is two FC layers: no CAM
    # the baseline knows nothing of the photo: its map is the same for every image
    assert 0 < rows["centre-gaussian"].energy < 100
    assert 0 <= evaluation.classification_error <= 100
    table = to_markdown(evaluation)
    assert "| fixations |" in table and "cam: not available" in table


def test_cli_evaluate_writes_the_table_and_keeps_going_past_a_bad_image(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    rows = list(csv.reader((SAMPLES / "boxes.csv").open()))[1:5]
    for row in rows:
        (folder / row[0]).write_bytes((SAMPLES / row[0]).read_bytes())
    (folder / "broken.png").write_bytes(b"not a png")
    write_boxes(folder, rows + [["broken.png", 1, 0, 0, 10, 10]])
    out = tmp_path / "ev"
    proc = run_cli(
        "evaluate",
        str(FASHION / "resnet.onnx"),
        str(folder),
        "--preset",
        "raw",
        "--methods",
        "fixations,gradcam:box=0.3",
        "--perturbation",
        "1",
        "--steps",
        "4",
        "--out",
        str(out),
        cwd=tmp_path,
    )
    assert proc.returncode == 1, proc.stderr  # one image failed, the rest were scored
    assert "Traceback" not in proc.stderr and "#" in proc.stderr  # the progress bar
    assert "| gradcam:box=0.3 |" in proc.stdout and "broken.png" in proc.stdout
    record = json.loads((out / "evaluation.json").read_text())
    assert [r["images"] for r in record["rows"]] == [4, 4] and [r["failed"] for r in record["rows"]] == [1, 1]
    assert (out / "evaluation.csv").read_text().startswith("label,images,failed")


def test_cli_evaluate_refuses_bad_options_in_one_line(tmp_path):
    for args, message in (
        (["--methods", "lime"], "unknown method"),
        (["--iou", "0"], "(--iou) must be a number in (0, 1]"),
        (["--box-threshold", "0"], "box threshold"),
    ):
        proc = run_cli(
            "evaluate", str(FASHION / "vgg.onnx"), str(SAMPLES), "--preset", "raw", *args, "--out", str(tmp_path), cwd=tmp_path
        )
        assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("evaluate", str(FASHION / "vgg.onnx"), str(tmp_path / "none"), cwd=tmp_path)
    assert proc.returncode == 2 and "is not a folder" in proc.stderr


def test_maps_can_explain_the_labelled_class_and_a_bad_label_fails_alone(tmp_path):
    from fixtrace.evaluate import make_maps

    folder = tmp_path / "data"
    folder.mkdir()
    rows = list(csv.reader((SAMPLES / "boxes.csv").open()))[1:7]
    rows[2][1] = "12"  # the model has 10 classes
    for row in rows:
        (folder / row[0]).write_bytes((SAMPLES / row[0]).read_bytes())
    items = read_dataset(write_boxes(folder, rows))
    results = list(
        make_maps(FASHION / "inception.onnx", items, parse_method("gradcam"), preset="raw", batch_size=4, explain="label")
    )
    assert len(results) == 6 and isinstance(results[2], FixtraceError) and "out of range" in str(results[2])
    for item, result in zip(items, results):
        if item.label < 10:
            assert result.item == item and result.explanation.target.index == item.label
            assert result.predicted == result.explanation.top_classes[0].index
    predicted = list(make_maps(FASHION / "inception.onnx", items[:2], parse_method("gradcam"), preset="raw"))
    assert [r.explanation.target.index for r in predicted] == [r.predicted for r in predicted]
    with pytest.raises(FixtraceError, match="not 'truth'"):
        evaluate(FASHION / "inception.onnx", items, [parse_method("gradcam")], preset="raw", explain="truth")
