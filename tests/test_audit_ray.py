"""``fixtrace audit --engine ray``: on a local Ray cluster (2 workers) the ledger equals the local
engine's on the same 50 images, an audit resumes across engines, and without Ray the engine is
refused with one line before any image (that check runs in the default suite)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from fixtrace.audit.ledger import read_records
from fixtrace.cli import main

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "mobilenet_v2.onnx"
PHOTOS = sorted((ROOT / "models" / "images").glob("*.jpg"))
N = 50
TOL = 1e-6


def photos(folder: Path, n: int = N) -> Path:
    """``n`` crops of the bundled photos in ``folder`` (and a sub-folder)."""
    for k in range(n):
        source = Image.open(PHOTOS[k % len(PHOTOS)]).convert("RGB")
        crop = source.crop((k, k, source.width - 2 * k, source.height - k)).resize((112, 112))
        path = folder / ("sub" if k % 2 else "") / f"photo{k:02d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        crop.save(path, quality=90)
    return folder


def audit(images: Path, out: Path, *extra: str) -> int:
    return main(["audit", str(MODEL), str(images), "--out", str(out), "--method", "fixations,gradcam", "--quiet", *extra])


def by_id(out: Path) -> dict[str, dict]:
    return {r["id"]: r for r in read_records(out / "results.jsonl")}


def assert_same(a: dict[str, dict], b: dict[str, dict]) -> None:
    assert sorted(a) == sorted(b)
    for key, x in a.items():
        y = b[key]
        assert (x["status"], x["image"], x["size"], x["correct"]) == (y["status"], y["image"], y["size"], y["correct"]), key
        assert x["prediction"]["index"] == y["prediction"]["index"], key
        assert abs(x["prediction"]["probability"] - y["prediction"]["probability"]) < TOL, key
        assert [c["index"] for c in x["top5"]] == [c["index"] for c in y["top5"]], key
        assert all(abs(c["probability"] - d["probability"]) < TOL for c, d in zip(x["top5"], y["top5"])), key
        assert sorted(x["methods"]) == sorted(y["methods"]), key
        for name, m in x["methods"].items():
            n = y["methods"][name]
            assert (m["overlay"], m["thumb"]) == (n["overlay"], n["thumb"]), (key, name)
            for field in ("box", "peak"):
                assert len(m[field]) == len(n[field]), (key, name, field)
                assert all(abs(u - v) < TOL for u, v in zip(m[field], n[field])), (key, name, field, m[field], n[field])
            assert abs(m["entropy"] - n["entropy"]) < TOL, (key, name)


def test_engine_ray_without_ray_is_one_line_exit_2(tmp_path: Path) -> None:
    """Ray not importable: exit 2, one line naming fixtrace[ray], nothing written."""
    images = photos(tmp_path / "images", 2)
    code = (
        "import sys; sys.modules['ray'] = None\n"
        "from fixtrace.cli import main\n"
        f"sys.exit(main(['audit', {str(MODEL)!r}, {str(images)!r}, '--out', {str(tmp_path / 'out')!r}, '--engine', 'ray']))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "install fixtrace[ray]" in lines[0], done.stderr
    assert not (tmp_path / "out" / "results.jsonl").exists()


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[ray]'; CI's extra step does)")
    pytest.importorskip("ray.data", reason="Ray Data is not installed (pip install -e '.[ray]')")
    import logging

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def local_audit(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The 50 images and their audit by the local engine."""
    root = tmp_path_factory.mktemp("ray")
    images = photos(root / "images")
    assert audit(images, root / "local") == 0
    return images, root / "local"


@pytest.mark.ray
def test_ray_ledger_equals_local(ray_cluster, local_audit, tmp_path: Path) -> None:
    images, local = local_audit
    assert audit(images, tmp_path / "ray", "--engine", "ray", "--workers", "2") == 0
    ours = by_id(tmp_path / "ray")
    assert len(ours) == N and all(r["status"] == "ok" for r in ours.values())
    assert_same(ours, by_id(local))
    for r in ours.values():  # the actors drew the pictures in the audit folder
        for m in r["methods"].values():
            assert (tmp_path / "ray" / m["overlay"]).is_file() and (tmp_path / "ray" / m["thumb"]).is_file()
    manifest = json.loads((tmp_path / "ray" / "manifest.json").read_text())
    assert manifest["runs"][-1]["engine"] == {"name": "ray", "workers": 2}
    assert manifest["counts"] == {"images": N, "ok": N, "failed": 0}
    assert (tmp_path / "ray" / "report.html").is_file()


@pytest.mark.ray
def test_resume_across_engines(ray_cluster, local_audit, tmp_path: Path) -> None:
    """Half the images on the local engine, then the same command on Ray does the rest only."""
    images, local = local_audit
    # The ids of a list are relative to its folder: the list lives in the images folder (the
    # folder's walk takes images only).
    listed = images / "half.txt"
    listed.write_text("".join(f"{p.relative_to(images)}\n" for p in sorted(images.rglob("*.jpg"))[: N // 2]))
    try:
        out = tmp_path / "audit"
        assert main(["audit", str(MODEL), str(listed), "--out", str(out), "--method", "fixations,gradcam", "--quiet"]) == 0
        first = by_id(out)
        assert len(first) == N // 2
        assert audit(images, out, "--engine", "ray", "--workers", "2") == 0
    finally:
        listed.unlink()
    after = by_id(out)
    assert len(after) == N
    assert all(after[k]["finished"] == first[k]["finished"] for k in first)  # not run again
    manifest = json.loads((out / "manifest.json").read_text())
    assert [r["engine"]["name"] for r in manifest["runs"]] == ["local", "ray"]
    assert [r["counts"]["images"] for r in manifest["runs"]] == [N // 2, N // 2]
    local_records = by_id(local)
    for key in after:  # the paths differ (a list, then a folder): compare the rest
        after[key]["image"] = local_records[key]["image"]
    assert_same(after, local_records)
