"""``fixtrace audit --toolbox``: the toolbox's views of the audited photos in the report; a view
that cannot be made says why and the audit still succeeds."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import MODELS, run_cli

FASHION = MODELS / "fashion"


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    pytest.importorskip("sklearn")
    folder = tmp_path_factory.mktemp("toolbox")
    done = run_cli(
        "audit", FASHION / "resnet.onnx", FASHION / "samples", "--preset", "raw", "--out", folder / "audit",
        "--toolbox", "--method", "gradcam", "--quiet", cwd=folder,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return folder / "audit"


def test_every_view_is_written_and_indexed(audited):
    panels = json.loads((audited / "toolbox" / "index.json").read_text())
    assert [p["title"] for p in panels] == ["Filters of the first conv", "Dead filters", "Top images", "t-SNE of the codes"]
    for panel in panels:
        assert panel["files"], panel
        for name in panel["files"] + ([panel["picture"]] if panel["picture"] else []):
            assert (audited / name).is_file(), name
    dead = json.loads((audited / "toolbox" / "dead_filters.json").read_text())
    assert dead["images"] == 12 and len(panels[1]["lines"]) == len(dead["layers"])
    # The top-images view reads the last conv map's channels that peak highest over the photos.
    last = dead["layers"][-1]
    winners = json.loads((audited / "toolbox" / "top_images" / "winners.json").read_text())
    assert winners["layer"] == last["layer"]
    strongest = sorted(np.argsort(-np.asarray(last["peak"]), kind="stable")[:4].tolist())
    assert sorted({w["unit"] for w in winners["winners"]}) == strongest
    coords = np.load(audited / "toolbox" / "tsne" / "coords.npy")
    assert coords.shape == (12, 2) and np.isfinite(coords).all()


def test_the_report_shows_the_views(audited):
    html = (audited / "report.html").read_text()
    assert "Inside the network" in html
    for name in ("toolbox/filters.png", "toolbox/top_images/top_images.jpg", "toolbox/tsne/grid.jpg"):
        assert f'src="{name}"' in html


def test_a_view_that_cannot_be_made_says_why_and_the_audit_succeeds(tmp_path):
    done = run_cli(
        "audit", MODELS / "mobilenet_v2.onnx", MODELS / "images" / "chelsea.jpg", "--out", tmp_path / "audit",
        "--toolbox", "--method", "gradcam", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "toolbox: t-SNE of the codes: not available" in done.stderr and "Traceback" not in done.stderr
    panels = json.loads((tmp_path / "audit" / "toolbox" / "index.json").read_text())
    assert panels[-1]["picture"] is None and "at least" in panels[-1]["caption"]
    assert (tmp_path / "audit" / "toolbox" / "filters.png").is_file()


def test_a_bad_toolbox_count_is_refused_before_any_image(tmp_path):
    done = run_cli(
        "audit", MODELS / "mobilenet_v2.onnx", MODELS / "images", "--out", tmp_path / "audit", "--toolbox-images", "0",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2 and "--toolbox-images" in done.stderr and not (tmp_path / "audit" / "results.jsonl").exists()
