"""``fixtrace audit``: inputs and ids, the ledger (torn lines, last line wins), the manifest and the
refusal to mix audits, resume after a real SIGKILL, failures recorded without stopping the audit."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fixtrace.audit.engine import AuditSettings, run_audit
from fixtrace.audit.inputs import AuditInput, count_inputs, iter_inputs
from fixtrace.audit.ledger import Ledger, read_records
from fixtrace.audit.measures import normalised_entropy, pearson
from fixtrace.audit.truth import Truth
from fixtrace.cli import main
from fixtrace.errors import FixtraceError, OptionError
from hostile.groups.images import png_header

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "mobilenet_v2.onnx"
PHOTOS = sorted((ROOT / "models" / "images").glob("*.jpg"))
RECORD_KEYS = {
    "id",
    "image",
    "status",
    "error",
    "size",
    "prediction",
    "top5",
    "truth",
    "correct",
    "methods",
    "agreement",
    "timings",
    "finished",
}
METHOD_KEYS = {"box", "peak", "entropy", "energy_in_boxes", "pointing_hit", "overlay", "thumb"}


def photo_folder(folder: Path, n: int, size: int = 96) -> list[Path]:
    """``n`` small photos (crops of the bundled ones) in ``folder`` and a sub-folder."""
    paths = []
    for k in range(n):
        source = Image.open(PHOTOS[k % len(PHOTOS)]).convert("RGB")
        crop = source.crop((k, k, source.width - k, source.height - k)).resize((size, size))
        path = folder / ("sub" if k % 2 else "") / f"photo{k:02d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        crop.save(path, quality=90)
        paths.append(path)
    return paths


def audit(*args: object) -> int:
    return main(["audit", str(MODEL), *map(str, args)])


def ledger_of(folder: Path) -> list[dict]:
    lines = (folder / "results.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


# -- inputs -------------------------------------------------------------------------------------
def test_inputs_folders_globs_and_lists_stream_with_stable_safe_ids(tmp_path):
    photos = photo_folder(tmp_path / "set", 4, size=32)
    (tmp_path / "set" / ".hidden.jpg").write_bytes(b"")
    (tmp_path / "set" / "notes.txt").write_text("not an image")
    odd = tmp_path / "set" / "a b#é.jpg"
    odd.write_bytes(photos[0].read_bytes())
    folder_ids = [i.id for i in iter_inputs([str(tmp_path / "set")])]
    assert folder_ids[1:3] == ["photo00.jpg", "photo02.jpg"]  # each folder sorted, then its sub-folders
    assert "sub/photo01.jpg" in folder_ids and len(folder_ids) == 5
    unsafe = next(i for i in folder_ids if i.startswith("a_b"))
    assert unsafe.startswith("a_b_é.jpg-") and len(unsafe) == len("a_b_é.jpg-") + 8  # hashed: stays unique
    assert folder_ids == [i.id for i in iter_inputs([str(tmp_path / "set")])]  # stable
    assert count_inputs([str(tmp_path / "set")]) == 5

    pattern = str(tmp_path / "set" / "**" / "photo*.jpg")
    assert sorted(i.id for i in iter_inputs([pattern])) == ["photo00.jpg", "photo02.jpg", "sub/photo01.jpg", "sub/photo03.jpg"]

    listing = tmp_path / "list.txt"
    listing.write_text("# photos\nset/photo00.jpg\n\n" + str(photos[1]) + "\nmissing.jpg\n")
    listed = list(iter_inputs([str(listing)]))
    assert [i.id for i in listed] == ["set/photo00.jpg", "set/sub/photo01.jpg", "missing.jpg"]
    assert listed[1].path == photos[1]

    table = tmp_path / "list.csv"
    table.write_text("label,image\n3,set/photo00.jpg\n4,set/photo02.jpg\n")
    assert [i.id for i in iter_inputs([str(table)])] == ["set/photo00.jpg", "set/photo02.jpg"]
    first = tmp_path / "first.csv"
    first.write_text("path,label\nset/photo02.jpg,1\n")
    assert [i.path for i in iter_inputs([str(first)])] == [tmp_path / "set" / "photo02.jpg"]

    twice = [i.id for i in iter_inputs([str(photos[0]), str(photos[0])])]
    assert twice == ["photo00.jpg", "photo00.jpg~2"]


def test_inputs_refuse_an_empty_folder_and_a_pattern_matching_nothing(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FixtraceError, match="no images in folder"):
        count_inputs([str(tmp_path / "empty")])
    with pytest.raises(OptionError, match="no file matches"):
        count_inputs([str(tmp_path / "*.png")])


# -- ledger and measures ------------------------------------------------------------------------
def test_ledger_cuts_a_torn_line_and_keeps_the_last_record_of_an_id(tmp_path):
    path = tmp_path / "results.jsonl"
    lines = [{"id": "a", "status": "error"}, {"id": "b", "status": "ok"}, {"id": "a", "status": "ok"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines) + "not json\n" + '{"id": "c", "sta')
    ledger = Ledger(path)
    assert ledger.repaired and not path.read_bytes().endswith(b'"sta')
    assert ledger.status == {"a": "ok", "b": "ok"} and ledger.done("a")
    ledger.append({"id": "c", "status": "error", "error": "x"})
    assert not ledger.done("c") and ledger.counts() == {"images": 3, "ok": 2, "failed": 1}
    ledger.compact()
    ledger.append({"id": "d", "status": "ok"})
    ledger.close()
    assert [(r["id"], r["status"]) for r in read_records(path)] == [("b", "ok"), ("a", "ok"), ("c", "error"), ("d", "ok")]
    assert path.read_text().count("\n") == 4


def test_measures_entropy_and_pearson():
    spike = np.zeros((8, 8))
    spike[2, 3] = 1
    assert normalised_entropy(spike) == 0.0
    assert normalised_entropy(np.ones((8, 8))) == pytest.approx(1.0)
    assert normalised_entropy(np.zeros((8, 8))) is None
    ramp = np.arange(64.0).reshape(8, 8)
    assert pearson(ramp, 2 * ramp + 1) == pytest.approx(1.0)
    assert pearson(ramp, -ramp) == pytest.approx(-1.0)
    assert pearson(ramp, np.ones((8, 8))) is None


# -- the command --------------------------------------------------------------------------------
def test_audit_writes_ledger_pictures_manifest_and_records_bad_images(tmp_path, capsys):
    folder = tmp_path / "set"
    photos = photo_folder(folder, 3)
    (folder / "truncated.jpg").write_bytes(PHOTOS[0].read_bytes()[:300])
    (folder / "header_only.png").write_bytes(png_header(64, 64))
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.jpg").write_text("hello")
    listing = tmp_path / "more.txt"
    (tmp_path / "a_folder.jpg").mkdir()
    os.symlink(tmp_path / "nowhere.jpg", tmp_path / "broken.jpg")
    listing.write_text("a_folder.jpg\nbroken.jpg\ngone.jpg\n")
    boxes = tmp_path / "boxes.csv"
    boxes.write_text(f"image,label,x0,y0,x1,y1\nset/{photos[0].name},285,0,0,48,96\n")
    truth = tmp_path / "truth.csv"
    truth.write_text(f"image,label\nset/{photos[0].name},Egyptian cat\nset/sub/{photos[1].name},999\n")
    out = tmp_path / "audit"
    code = audit(folder, listing, "--out", out, "--method", "fixations,gradcam", "--boxes", boxes, "--labels-csv", truth)
    captured = capsys.readouterr()
    assert code == 1
    errors = [line for line in captured.err.splitlines() if line.startswith("fixtrace: error:")]
    assert len(errors) == 7, captured.err
    assert "Traceback" not in captured.err
    summary = captured.out.strip().splitlines()[-1]
    assert summary.startswith("audit: 10 images, 3 ok, 7 failed") and "images/s" in summary

    records = ledger_of(out)
    assert len(records) == 10 and len({r["id"] for r in records}) == 10
    for r in records:
        assert RECORD_KEYS <= set(r), r
        assert r["status"] in ("ok", "error")
    ok = {r["id"]: r for r in records if r["status"] == "ok"}
    assert set(ok) == {"photo00.jpg", "sub/photo01.jpg", "photo02.jpg"}
    first = ok["photo00.jpg"]
    assert first["size"] == [96, 96] and len(first["top5"]) == 5
    assert set(first["prediction"]) == {"index", "name", "probability"}
    assert first["truth"] == "Egyptian cat" and first["correct"] == (first["prediction"]["index"] == 285)
    assert ok["sub/photo01.jpg"]["truth"] == "toilet tissue" and ok["photo02.jpg"]["truth"] is None
    assert set(first["methods"]) == {"fixations", "gradcam"}
    for name, m in first["methods"].items():
        assert METHOD_KEYS <= set(m)
        assert 0 <= m["energy_in_boxes"] <= 1 and isinstance(m["pointing_hit"], bool)
        assert 0 < m["entropy"] <= 1 and len(m["box"]) == 4 and len(m["peak"]) == 2
        assert m["overlay"] == f"items/photo00.jpg/{name}/overlay.jpg"
        assert Image.open(out / m["overlay"]).size == (96, 96)
        assert max(Image.open(out / m["thumb"]).size) <= 160
    assert ok["photo02.jpg"]["methods"]["gradcam"]["energy_in_boxes"] is None  # no box for it
    assert set(first["agreement"]) == {"fixations|gradcam"} and -1 <= first["agreement"]["fixations|gradcam"] <= 1
    assert {"total_ms", "fixations", "gradcam"} <= set(first["timings"])
    failed = {r["id"]: r["error"] for r in records if r["status"] == "error"}
    assert "not found" in failed["gone.jpg"] and "folder" in failed["a_folder.jpg"]
    assert "broken symbolic link" in failed["broken.jpg"] and "empty" in failed["empty.png"]
    assert all(r["prediction"] is None and r["methods"] == {} for r in records if r["status"] == "error")

    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["versions"]) == {"fixtrace", "onnx", "onnxruntime", "numba", "numpy"}
    assert len(manifest["model"]["sha256"]) == 64 and manifest["model"]["opset"] == 13
    assert manifest["model"]["inputs"][0]["name"] == "input" and manifest["preset"]["name"] == "imagenet"
    assert manifest["methods"] == ["fixations", "gradcam"] and manifest["options"]["batch_size"] == 8
    assert manifest["device"]["providers"] and manifest["counts"] == {"images": 10, "ok": 3, "failed": 7}
    assert len(manifest["runs"]) == 1 and manifest["runs"][0]["end"] and manifest["start"] and manifest["end"]

    # Rerun: the good ones are skipped, the failed ones tried again and replaced (one line each).
    (folder / "text.jpg").unlink()
    Image.open(photos[0]).save(folder / "text.jpg")  # now a photo
    code = audit(folder, listing, "--out", out, "--method", "fixations,gradcam", "--boxes", boxes, "--labels-csv", truth)
    captured = capsys.readouterr()
    assert code == 1 and "3 already done" in captured.out
    again = ledger_of(out)
    assert len(again) == 10 and len({r["id"] for r in again}) == 10
    assert again[:3] == records[:3] or {r["id"]: r for r in again}["photo00.jpg"] == first  # nothing redone
    assert {r["id"]: r["status"] for r in again}["text.jpg"] == "ok"
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["runs"]) == 2 and manifest["counts"] == {"images": 10, "ok": 4, "failed": 6}
    assert manifest["runs"][1]["counts"] == {"images": 7, "ok": 1, "failed": 6}


def test_audit_refuses_another_model_or_settings_unless_forced(tmp_path, capsys):
    import onnx

    photo_folder(tmp_path / "set", 2)
    out = tmp_path / "audit"
    assert audit(tmp_path / "set", "--out", out, "--quiet") == 0
    before = (out / "results.jsonl").read_bytes()
    other = onnx.load(MODEL)
    other.doc_string = "another model"
    onnx.save(other, tmp_path / "other.onnx")
    capsys.readouterr()
    assert main(["audit", str(tmp_path / "other.onnx"), str(tmp_path / "set"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "another model" in err[0] and "--force" in err[0]
    assert audit(tmp_path / "set", "--out", out, "--method", "gradcam") == 2
    assert "other settings" in capsys.readouterr().err
    assert audit(tmp_path / "set", "--out", out, "--sigma", "0.1") == 2
    assert (out / "results.jsonl").read_bytes() == before  # untouched

    assert audit(tmp_path / "set", "--out", out, "--method", "gradcam", "--force", "--quiet") == 0
    records = ledger_of(out)
    assert len(records) == 2 and all(set(r["methods"]) == {"gradcam"} for r in records)
    assert not (out / "items" / "photo00.jpg" / "fixations").exists()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["methods"] == ["gradcam"] and len(manifest["runs"]) == 1


def test_a_rerun_sweeps_what_a_killed_audit_left_half_written(tmp_path):
    """The hidden temporaries of a picture folder being replaced (at any depth under items/) and of
    a ledger being rewritten go; the finished pictures and records stay."""
    photo_folder(tmp_path / "set", 2)
    out = tmp_path / "audit"
    assert audit(tmp_path / "set", "--out", out, "--quiet") == 0
    before = ledger_of(out)
    nested = out / "items" / "sub" / ".photo01.jpg.k2j4a9.tmp" / "fixations"
    nested.mkdir(parents=True)
    (nested / "overlay.png").write_bytes(b"half")
    old = out / "items" / ".photo00.jpg.x81b.old"
    old.mkdir()
    (out / ".results.jsonl.q1w2.tmp").write_text("{", encoding="utf-8")
    assert audit(tmp_path / "set", "--out", out, "--quiet") == 0
    assert not nested.parent.exists() and not old.exists() and not (out / ".results.jsonl.q1w2.tmp").exists()
    assert ledger_of(out) == before
    assert all((out / r["methods"]["fixations"]["overlay"]).is_file() for r in before)


def test_audit_bad_model_or_option_fails_before_any_image(tmp_path, capsys):
    photo_folder(tmp_path / "set", 1)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    out = tmp_path / "audit"
    assert main(["audit", str(bad), str(tmp_path / "set"), "--out", str(out)]) == 2
    assert audit(tmp_path / "set", "--out", out, "--workers", "-1") == 2
    assert audit(tmp_path / "set", "--out", out, "--method", "nosuch") == 2
    assert audit(tmp_path / "nothing", "--out", out) == 1  # a missing image fails alone (as explain)
    capsys.readouterr()
    missing = tmp_path / "no_boxes.csv"
    assert audit(tmp_path / "set", "--out", tmp_path / "audit2", "--boxes", missing) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fixtrace: error:")
    assert not (tmp_path / "audit2").exists()


def test_engine_records_a_photo_that_disappears_mid_run(tmp_path, mobilenet):
    photos = photo_folder(tmp_path / "set", 3)

    def inputs():
        for k, path in enumerate(photos):
            if k == 2:
                path.unlink()  # gone after the audit started
            yield AuditInput(path.name, path)

    ledger = Ledger(tmp_path / "results.jsonl")
    names = [f"c{k}" for k in range(1000)]
    run_audit(mobilenet, inputs(), tmp_path, ledger, Truth(), names, AuditSettings(batch_size=2, workers=1))
    ledger.close()
    records = list(read_records(tmp_path / "results.jsonl"))
    assert [r["status"] for r in records] == ["ok", "ok", "error"]
    assert "not found" in records[2]["error"]


# -- resume after SIGKILL -----------------------------------------------------------------------
def test_audit_resumes_after_sigkill_at_several_moments(tmp_path):
    folder = tmp_path / "set"
    photo_folder(folder, 14, size=64)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    out = tmp_path / "audit"
    command = [sys.executable, "-m", "fixtrace.cli", "audit", str(MODEL), str(folder), "--out", str(out)]
    command += ["--method", "fixations,gradcam", "--batch-size", "2", "--quiet"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    ledger = out / "results.jsonl"

    def lines() -> int:
        return ledger.read_bytes().count(b"\n") if ledger.exists() else 0

    # Kill once the ledger has grown by 1, by a random count, and at a random moment after that.
    for kill in ("lines:1", f"lines:{rng.randint(1, 4)}", f"seconds:{rng.uniform(0.2, 2.5):.2f}"):
        kind, amount = kill.split(":")
        start_lines, start = lines(), time.monotonic()
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
        try:
            while process.poll() is None and time.monotonic() - start < 120:
                if kind == "lines" and lines() >= start_lines + int(amount):
                    break
                if kind == "seconds" and lines() > start_lines and time.monotonic() - start > float(amount):
                    break
                time.sleep(0.005)
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
        for record in read_records(ledger):  # every whole line parses
            assert record["status"] in ("ok", "error")
    before = {r["id"]: r["finished"] for r in read_records(ledger) if r["status"] == "ok"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 1, done.stderr  # broken.jpg
    records = ledger_of(out)  # every line parses
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids)) == 15, f"seed {seed}"
    assert sum(r["status"] == "error" for r in records) == 1
    for r in records:
        if r["id"] in before:
            assert r["finished"] == before[r["id"]], f"{r['id']} was redone (seed {seed})"
        for m in r["methods"].values():
            assert (out / m["overlay"]).is_file() and (out / m["thumb"]).is_file()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"] == {"images": 15, "ok": 14, "failed": 1}
