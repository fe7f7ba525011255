"""The hostile-input corpus (tests/hostile/) through the CLI and the API.

The default run takes the fast subset (``Case.fast``); ``pytest -m corpus`` runs all of it (CI's
extra step). Each case is one test, named by its id; a failure lists everything wrong with the
outcome (exit code, error line, leaked internals, files read or written where they must not be,
invalid JSON).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import run_cli
from hostile.corpus import all_cases, build
from hostile.runner import Worker, run_case

CASES = all_cases()


@pytest.fixture(scope="session")
def worker(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    build(root)
    process = Worker(root)
    process.start()
    yield process
    process.stop()


def _params():
    for case in CASES:
        marks = [] if case.fast else [pytest.mark.corpus]
        yield pytest.param(case, id=case.id, marks=marks)


@pytest.mark.parametrize("case", list(_params()))
def test_case(worker, case):
    outcome, problems = run_case(worker, case)
    assert not problems, f"{case.id} ({case.kind}, {outcome.seconds:.1f} s): " + "; ".join(problems)


# --------------------------------------------------------------------------------------------
# Faults no in-process case can stage: a really full disk, a SIGKILL mid-batch.
# --------------------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
MOBILENET = ROOT / "models" / "mobilenet_v2.onnx"
CHELSEA = ROOT / "models" / "images" / "chelsea.jpg"
OUTPUTS = ["explanation.json", "heatmap.npy", "heatmap.png", "input_map.npy", "overlay.png"]


@pytest.fixture
def small_disk(tmp_path):
    """A 1.5 MB tmpfs (root only; skipped elsewhere): room for the outputs of one 451x300 photo."""
    mount = tmp_path / "small_disk"
    mount.mkdir()
    if (
        os.geteuid() != 0
        or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1500k", "tmpfs", str(mount)], capture_output=True).returncode != 0
    ):
        pytest.skip("mounting a small tmpfs needs root")
    yield mount
    subprocess.run(["umount", str(mount)], capture_output=True)


@pytest.mark.parametrize("threads", ["1", "2"])
def test_full_disk_stops_with_one_line_and_keeps_finished_work(tmp_path, small_disk, threads):
    """One writer: the first photo fits, the second fills the disk, and the run stops there. Two
    writers may fill the disk with two photos at once, so which one fits is not fixed: every
    folder left is complete and in the summary as done, and the count says how many."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for k in range(4):
        shutil.copy(CHELSEA, photos / f"cat_{k}.jpg")
    out = small_disk / "out"
    proc = run_cli("explain", MOBILENET, photos, "--out", out, "--quiet", "--threads", threads, cwd=tmp_path)
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(errors) == 1, proc.stderr
    assert errors[0].startswith("fixtrace: error: ") and "the disk is full" in errors[0], errors[0]
    assert "Traceback" not in proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    if threads == "1":
        assert [(e["folder"], e["status"]) for e in summary] == [("cat_0", "ok")]
    assert all(e["status"] == "ok" for e in summary) and len(summary) <= 1
    assert f"stopped after {len(summary)} of 4 images" in errors[0]
    for entry in summary:
        assert sorted(p.name for p in (out / entry["folder"]).iterdir()) == OUTPUTS
    # no half-written folder left, none missing from the summary
    assert sorted(p.name for p in out.iterdir()) == sorted([e["folder"] for e in summary] + ["summary.json"])


@pytest.mark.corpus
def test_sigkill_mid_batch_never_leaves_broken_files(tmp_path):
    """Killed at any moment, a run leaves a valid summary.json (or none yet) and only complete
    photo folders; rerun, it finishes the batch."""
    photos = tmp_path / "photos"
    photos.mkdir()
    samples = sorted((ROOT / "models" / "fashion" / "samples").glob("*.png"))
    for k in range(36):
        shutil.copy(samples[k % len(samples)], photos / f"item_{k:02d}.png")
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "fixtrace.cli",
        "explain",
        str(ROOT / "models" / "fashion" / "vgg.onnx"),
        str(photos),
        "--out",
        str(out),
        "--preset",
        "raw",
        "--batch-size",
        "4",
        "--quiet",
    ]
    for delay in (1.0, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0):
        proc = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if (out / "summary.json").exists():
            summary = json.loads((out / "summary.json").read_text())
            assert all(e["status"] == "ok" for e in summary)
        for folder in out.iterdir() if out.exists() else []:
            if folder.is_dir() and not folder.name.startswith("."):
                assert sorted(p.name for p in folder.iterdir()) == OUTPUTS, folder
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert len(json.loads((out / "summary.json").read_text())) == 36
