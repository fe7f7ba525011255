"""The audit report (``fixtrace.audit.report``): rendered from an audit folder made here with the
real Explainer on the bundled photos (not the audit engine), checked as text and in headless
Chromium (skipped without /usr/bin/chromium)."""

from __future__ import annotations

import html
import itertools
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from conftest import IMAGES, MODELS
from fixtrace import Explainer
from fixtrace.audit.ledger import LatestRecords
from fixtrace.audit.report import Lowest, item_url, render_report
from fixtrace.errors import FixtraceError
from fixtrace.metrics.localization import energy_in_box, pointing_hit

METHODS = ["fixations", "gradcam"]
PHOTOS = sorted(IMAGES.glob("*.jpg"))
#: A file name that is markup (legal on Linux: no slash).
HOSTILE_PHOTO = "<img src=x onerror=alert(1)>.jpg"
#: Names that would run as script if the page did not escape them.
HOSTILE_NAME = "<script>alert(1)</script>.jpg"
HOSTILE_CLASS = "<b onmouseover=alert(2)>tabby</b>"
CHROMIUM = Path("/usr/bin/chromium")
SECTIONS = ("summary", "classes", "least-confident", "wrong", "outside", "agreement", "failures")


@pytest.fixture(scope="module")
def explainer() -> Explainer:
    return Explainer(MODELS / "mobilenet_v2.onnx", method=METHODS)


def _entropy(heat: np.ndarray) -> float:
    p = np.maximum(heat.astype(np.float64), 0).ravel()
    p = p[p > 0] / p.sum()
    return float(-(p * np.log(p)).sum())


def _record(audit: Path, explainer: Explainer, photo: Path, methods: list[str], truth: str | None, boxes: list | None) -> dict:
    """One ledger record of the audit schema, its overlays and thumbnails written under items/."""
    record: dict[str, Any] = {"id": photo.stem, "image": str(photo), "status": "ok", "error": None, "methods": {}}
    try:
        found = explainer.explain(photo, methods=methods)
    except FixtraceError as exc:
        return record | {"status": "error", "error": str(exc), "size": None, "prediction": None, "top5": []}
    first = next(iter(found.values()))
    top = [{"index": c.index, "name": c.name, "probability": c.probability} for c in first.top_classes[:5]]
    record |= {"size": [first.image.shape[1], first.image.shape[0]], "prediction": top[0], "top5": top, "truth": truth}
    record["correct"] = None if truth is None else truth == top[0]["name"]
    for label, explanation in found.items():
        folder = audit / "items" / photo.stem / label
        explanation.save(folder)
        with Image.open(folder / "overlay.png") as overlay:
            thumb = overlay.convert("RGB")
            thumb.thumbnail((240, 180))
            thumb.save(folder / "thumb.jpg", quality=80)
        heat = explanation.heatmap
        row, col = np.unravel_index(int(np.argmax(heat)), heat.shape)
        record["methods"][label] = {
            "box": list(explanation.box) if explanation.box else None,
            "peak": [int(col), int(row)],
            "entropy": _entropy(heat),
            "energy_in_boxes": energy_in_box(heat, boxes) if boxes else None,
            "pointing_hit": pointing_hit(heat, boxes) if boxes else None,
            "overlay": f"items/{photo.stem}/{label}/overlay.png",
            "thumb": f"items/{photo.stem}/{label}/thumb.jpg",
        }
    maps = {label: e.heatmap.ravel() for label, e in found.items()}
    record["agreement"] = {f"{a}|{b}": float(np.corrcoef(maps[a], maps[b])[0, 1]) for a, b in itertools.combinations(maps, 2)}
    return record | {"timings": {"total_ms": 12.5}, "finished": "2025-01-02T03:04:05+00:00", "extra": {"ignored": True}}


def build_audit(
    audit: Path, explainer: Explainer, photos: list[Path], methods: list[str], truths: dict[str, str] | None = None, boxes=None
) -> Path:
    """An audit folder as the audit engine writes it: results.jsonl, manifest.json and items/."""
    audit.mkdir(parents=True)
    records = [_record(audit, explainer, p, methods, (truths or {}).get(p.stem), boxes) for p in photos]
    with (audit / "results.jsonl").open("w", encoding="utf-8") as ledger:
        ledger.writelines(json.dumps(r) + "\n" for r in records)
    manifest = {
        "fixtrace": "0.1.0",
        "versions": {"onnxruntime": "test", "numpy": np.__version__},
        "model": {"path": str(MODELS / "mobilenet_v2.onnx"), "sha256": "ab" * 32, "opset": 13, "inputs": [[1, 3, 224, 224]]},
        "preprocessing": {"preset": "imagenet", "mean": [0.485, 0.456, 0.406]},
        "options": {"methods": methods, "batch_size": 8},
        "providers": ["CPUExecutionProvider"],
        "runs": [{"start": "2025-01-02T03:00:00+00:00", "end": "2025-01-02T03:05:00+00:00"}],
        "counts": {"images": len(records), "ok": sum(r["status"] == "ok" for r in records)},
    }
    (audit / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return audit


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list[Path]:
    """The bundled photos, a copy of one under a markup file name, and a broken file."""
    folder = tmp_path_factory.mktemp("photos")
    for photo in PHOTOS:
        shutil.copy(photo, folder / photo.name)
    shutil.copy(IMAGES / "chelsea.jpg", folder / HOSTILE_PHOTO)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg at all")
    return sorted(folder.iterdir())


@pytest.fixture(scope="module")
def full_audit(tmp_path_factory, explainer, photos) -> Path:
    """Two methods, truths (coffee's wrong), boxes (the photos' centres), a failure."""
    truths = {"camera": "tripod", "chelsea": "Egyptian cat", "coffee": "cup"}
    return build_audit(tmp_path_factory.mktemp("a") / "audit", explainer, photos, METHODS, truths, boxes=[(100, 60, 300, 240)])


@pytest.fixture(scope="module")
def plain_audit(tmp_path_factory, explainer) -> Path:
    """One method, no truths, no boxes, no failures."""
    return build_audit(tmp_path_factory.mktemp("b") / "audit", explainer, PHOTOS, ["fixations"])


def _copy(audit: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(audit, tmp_path / "audit"))


def _rewrite_ledger(audit: Path, change) -> None:
    ledger = audit / "results.jsonl"
    records = [change(json.loads(line)) for line in ledger.read_text(encoding="utf-8").splitlines()]
    ledger.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def _sections(page: str) -> set[str]:
    return {s for s in SECTIONS if f'<section id="{s}">' in page}


def test_full_audit_has_every_section(full_audit, tmp_path):
    audit = _copy(full_audit, tmp_path)
    out = render_report(audit, title="Bundled photos")
    assert out == audit / "report.html"
    page = out.read_text(encoding="utf-8")
    assert _sections(page) == set(SECTIONS)
    assert "<title>Bundled photos</title>" in page
    # every ok photo's thumbnails, lazy, percent-encoded, linked to their overlays
    for stem in ("camera", "chelsea", "coffee"):
        for method in METHODS:
            assert f'<img src="items/{stem}/{method}/thumb.jpg" loading="lazy"' in page
            assert f'href="items/{stem}/{method}/overlay.png"' in page
    assert 'src="items/%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E/fixations/thumb.jpg"' in page
    # summary: 5 images, 4 explained, 1 failed; the failure's reason; the wrong prediction's truth
    assert re.search(r"<b>5</b><span>images</span>", page) and re.search(r"<b>4</b><span>explained</span>", page)
    assert re.search(r"<b>1</b><span>failed</span>", page)
    assert "broken.jpg" in page and "truth: cup" in page
    assert "fixations|gradcam" in page and "CPUExecutionProvider" in page and "imagenet" in page
    assert "2025-01-02T03:00:00+00:00" in page  # the run's start, from the manifest


def test_plain_audit_leaves_out_the_sections_without_data(plain_audit, tmp_path):
    page = render_report(_copy(plain_audit, tmp_path)).read_text(encoding="utf-8")
    assert _sections(page) == {"summary", "classes", "least-confident"}
    assert "<title>fixtrace audit: mobilenet_v2.onnx</title>" in page
    assert "gradcam" not in page


def test_class_gallery_is_limited_and_counts_the_rest(full_audit, tmp_path):
    page = render_report(_copy(full_audit, tmp_path), class_limit=1, section_limit=2).read_text(encoding="utf-8")
    cats = page.split("Egyptian cat <span")[1].split("</h3>")[0]
    assert "2 image(s)" in cats
    assert "… and 1 more not shown." in page  # the second Egyptian cat
    least = page.split('<section id="least-confident">')[1].split("</section>")[0]
    assert least.count("<figure") == 2 and "… and 2 more not shown." in least
    assert "chelsea.jpg" in least and "camera" not in least and "coffee" not in least  # the lowest probabilities


def test_hostile_names_are_escaped(full_audit, tmp_path):
    audit = _copy(full_audit, tmp_path)

    def hostile(record: dict) -> dict:
        if record["status"] == "error":
            return record | {"image": HOSTILE_NAME, "error": f"cannot read {HOSTILE_NAME}"}
        if record["id"] == "coffee":
            record["prediction"]["name"] = HOSTILE_CLASS
        return record

    _rewrite_ledger(audit, hostile)
    page = render_report(audit, title="<i>t</i>").read_text(encoding="utf-8")
    assert "<script>alert" not in page and "<b onmouseover" not in page and "<img src=x" not in page and "<i>t</i>" not in page
    assert html.escape(HOSTILE_NAME) in page and html.escape(HOSTILE_CLASS) in page
    assert html.escape(HOSTILE_PHOTO) in page
    assert page.count("<script>") == 1  # the page's own


def test_torn_last_line_and_unreadable_lines(full_audit, tmp_path):
    audit = _copy(full_audit, tmp_path)
    ledger = audit / "results.jsonl"
    with ledger.open("a", encoding="utf-8") as f:
        f.write("not json\n")
        f.write(json.dumps({"id": "torn-photo", "image": "torn-photo.jpg", "status": "ok"})[:30])
    records = list(LatestRecords(ledger))
    assert len(records) == 5 and "torn-photo" not in {r["id"] for r in records}
    page = render_report(audit).read_text(encoding="utf-8")
    assert "torn-photo" not in page and re.search(r"<b>5</b><span>images</span>", page)
    assert "2 unreadable ledger line(s) skipped" in page


def test_a_retried_image_counts_once_with_its_last_record(tmp_path):
    ledger = tmp_path / "results.jsonl"
    lines = [{"id": "a", "status": "error", "error": "first try"}, {"id": "b", "status": "ok"}, {"id": "a", "status": "ok"}]
    ledger.write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    assert [(r["id"], r["status"]) for r in LatestRecords(ledger)] == [("b", "ok"), ("a", "ok")]
    page = render_report(tmp_path).read_text(encoding="utf-8")  # no manifest, no items: still a page
    assert "first try" not in page and 'id="failures"' not in page and "no thumbnail" in page


def test_a_large_ledger_keeps_the_page_bounded(full_audit, tmp_path):
    audit = _copy(full_audit, tmp_path)
    ok = [json.loads(line) for line in (audit / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    ok = [r for r in ok if r["status"] == "ok"]
    rng = np.random.default_rng(0)
    with (audit / "results.jsonl").open("w", encoding="utf-8") as ledger:
        for k in range(3000):
            record = json.loads(json.dumps(ok[k % len(ok)]))
            record["id"] = f"photo-{k}"
            record["prediction"]["probability"] = float(rng.random())
            ledger.write(json.dumps(record) + "\n")
    page = render_report(audit, class_limit=5, section_limit=10).read_text(encoding="utf-8")
    assert re.search(r"<b>3,000</b><span>images</span>", page)
    # 3 classes x 5, least confident 10, wrong 10 (coffee's 750), outside 10, agreement 10 x 2 maps
    assert page.count('loading="lazy"') == 15 + 10 + 10 + 10 + 20
    assert "… and 740 more not shown." in page  # wrong predictions beyond the 10 shown


def test_lowest_keeps_the_lowest_keys_in_order():
    kept: Lowest[str] = Lowest(3)
    for key, name in [(5, "e"), (1, "a"), (4, "d"), (1, "a2"), (3, "c"), (9, "z")]:
        kept.add(key, name)
    assert kept.entries == ["a", "a2", "c"] and kept.seen == 6 and kept.rest == 3


def test_item_urls_stay_inside_the_audit_folder(tmp_path):
    (tmp_path / "items" / "a b%#").mkdir(parents=True)
    (tmp_path / "items" / "a b%#" / "t.jpg").write_bytes(b"x")
    (tmp_path / "secret.txt").write_bytes(b"x")
    assert item_url(tmp_path, "items/a b%#/t.jpg") == "items/a%20b%25%23/t.jpg"
    for bad in ["items/missing.jpg", "/etc/passwd", "items/../secret.txt", "C:\\x.jpg", 3, None, ""]:
        assert item_url(tmp_path, bad) is None


# -- in a browser -----------------------------------------------------------------------------------
def _chromium(profile: Path, *args: str) -> subprocess.CompletedProcess:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
    ]
    return subprocess.run([str(CHROMIUM), *flags, *args], capture_output=True, text=True, timeout=180)


def _root_attributes(dom: str) -> dict[str, str]:
    tag = re.search(r"<html\b[^>]*>", dom)
    assert tag, dom[:500]
    return {k: html.unescape(v) for k, v in re.findall(r'([\w-]+)="([^"]*)"', tag.group(0))}


@pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium (apt-get install chromium): the browser check needs it")
def test_report_in_headless_chromium(full_audit, tmp_path):
    audit = _copy(full_audit, tmp_path)
    _rewrite_ledger(audit, lambda r: r | {"image": HOSTILE_NAME} if r["status"] == "error" else r)
    url = render_report(audit).as_uri()
    # check mode: every image loaded (lazy ones forced), no script error, CSP violation or dialog
    run = _chromium(tmp_path / "profile", "--virtual-time-budget=20000", "--dump-dom", url + "?check")
    found = _root_attributes(run.stdout)
    assert found.get("data-check") == "done", (run.stdout[:500], run.stderr[-3000:])
    assert json.loads(found["data-errors"]) == []
    assert json.loads(found["data-broken-images"]) == []
    assert int(found["data-images"]) >= 8  # 4 photos x 2 methods at least
    assert not re.search(r"CONSOLE.*(Uncaught|Error)|Content Security Policy", run.stderr), run.stderr[-3000:]
    # the check itself can fail: a missing thumbnail and a script the page did not sign are caught
    (audit / "items" / "camera" / "gradcam" / "thumb.jpg").unlink()
    page = (audit / "report.html").read_text(encoding="utf-8")
    (audit / "report.html").write_text(page.replace("</main>", "<script>alert(1)</script></main>"), encoding="utf-8")
    run = _chromium(tmp_path / "profile", "--virtual-time-budget=20000", "--dump-dom", url + "?check")
    found = _root_attributes(run.stdout)
    assert found.get("data-check") == "done", (run.stdout[:500], run.stderr[-3000:])
    assert json.loads(found["data-broken-images"]) == ["items/camera/gradcam/thumb.jpg"] * 2  # summary card and agreement table
    assert any("CSP violation: script-src" in e for e in json.loads(found["data-errors"]))
    (audit / "report.html").write_text(page, encoding="utf-8")
    # what a person sees: a screenshot that is not blank
    shot = tmp_path / "page.png"
    run = _chromium(tmp_path / "profile", "--hide-scrollbars", f"--screenshot={shot}", "--window-size=1280,2000", url + "?check")
    assert shot.is_file(), run.stderr[-3000:]
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.shape == (2000, 1280) and pixels.std() > 20


def test_module_entry_point_rerenders_a_folder(plain_audit, tmp_path, capsys):
    from fixtrace.audit.report import main

    audit = _copy(plain_audit, tmp_path)
    assert main([str(audit)]) == 0 and (audit / "report.html").is_file()
    assert capsys.readouterr().out.strip() == str(audit / "report.html")
    assert main([]) == 2 and main([str(audit / "nowhere")]) == 2
