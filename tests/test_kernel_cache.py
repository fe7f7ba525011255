"""Numba's on-disk cache must see edits to the shared kernel bodies (fixtrace.kernels.cache)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import fixtrace
from fixtrace.kernels import cache

# Calls the CPU remap kernel (body: shared/index.py remap_one) on an identity table and
# prints its result and whether numba loaded it from the on-disk cache.
_PROBE = """
import json
import numpy as np
from fixtrace.kernels.cpu.index import remap
from fixtrace.kernels.shared.index import AXIS_KEEP
table = np.array([[4, 1, 0, 4, AXIS_KEEP]], dtype=np.int64)
result = remap(np.arange(4, dtype=np.int64), table)
print(json.dumps({"result": result.tolist(), "hits": sum(remap.stats.cache_hits.values()),
                  "misses": sum(remap.stats.cache_misses.values())}))
"""


def _run(root: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    env["PYTHONPATH"] = str(root)
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], check=False, cwd=root, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _cache_files(root: Path) -> dict[str, int]:
    folder = root / "fixtrace" / "kernels" / "cpu" / "__pycache__"
    return {p.name: p.stat().st_mtime_ns for p in folder.glob("index.remap-*.nb[ic]")}


@pytest.mark.skipif(os.environ.get("NUMBA_DISABLE_JIT") == "1", reason="numba JIT disabled")
def test_edit_to_shared_body_recompiles(tmp_path: Path) -> None:
    shutil.copytree(Path(fixtrace.__file__).parent, tmp_path / "fixtrace", ignore=shutil.ignore_patterns("__pycache__"))

    first = _run(tmp_path)
    assert first["result"] == [0, 1, 2, 3]
    assert first["misses"] == 1
    written = _cache_files(tmp_path)
    assert any(name.endswith(".nbi") for name in written), "the kernel was not cached in-tree"

    shared = tmp_path / "fixtrace" / "kernels" / "shared" / "index.py"
    text = shared.read_text()
    head, sep, tail = text.partition("def remap_one(")
    body_start = tail.index("    rest = flat\n")
    shared.write_text(head + sep + tail[:body_start] + "    return -7\n" + tail[body_start:])

    edited = _run(tmp_path)
    assert edited["result"] == [-7, -7, -7, -7], "stale machine code reused after editing shared/"
    assert edited["misses"] == 1
    rewritten = _cache_files(tmp_path)
    assert rewritten != written

    again = _run(tmp_path)
    assert again["result"] == [-7, -7, -7, -7]
    assert again["hits"] == 1 and again["misses"] == 0
    assert _cache_files(tmp_path) == rewritten, "an unchanged kernel rewrote its cache"


def test_stamp_folds_in_shared_sources() -> None:
    kernel = cache.KERNELS_DIR / "cpu" / "index.py"
    _version, own, shared = cache.source_stamp(kernel)
    assert own != shared and len(shared) == 64
    assert cache.shared_sources_hash() == shared
    assert cache.is_kernel_file(kernel)
    assert not cache.is_kernel_file(Path(fixtrace.__file__))


def test_locators_registered_first_and_scoped() -> None:
    from numba.core.caching import CacheImpl

    assert cache.install() is True
    head = CacheImpl._locator_classes[: len(cache._installed)]
    assert head == cache._installed
    assert len(set(map(id, CacheImpl._locator_classes))) == len(CacheImpl._locator_classes), "installed twice"

    def outside() -> None:  # defined in tests/, not under fixtrace/kernels
        pass

    assert all(cls.from_function(outside, __file__) is None for cls in cache._installed)
    from fixtrace.kernels.cpu.index import remap

    locator = remap._cache._impl.locator
    assert type(locator) in cache._installed
    assert locator.get_source_stamp() == cache.source_stamp(remap.py_func.__code__.co_filename)


@pytest.mark.skipif(os.environ.get("NUMBA_DISABLE_JIT") == "1", reason="numba JIT disabled")
def test_unwritable_install_uses_user_cache(tmp_path: Path) -> None:
    root = tmp_path / "site"
    shutil.copytree(Path(fixtrace.__file__).parent, root / "fixtrace", ignore=shutil.ignore_patterns("__pycache__"))
    # A file where the cache folder would go: no in-tree cache, even for root (chmod would not stop it).
    (root / "fixtrace" / "kernels" / "cpu" / "__pycache__").write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    env.update(PYTHONPATH=str(root), XDG_CACHE_HOME=str(tmp_path / "user-cache"), PYTHONDONTWRITEBYTECODE="1")
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["result"] == [0, 1, 2, 3]
    assert list((tmp_path / "user-cache").rglob("index.remap-*.nbi")), "no user-wide cache written"


def test_unexpected_numba_internals_warn_and_keep_default(monkeypatch: pytest.MonkeyPatch) -> None:
    from numba.core.caching import CacheImpl

    before = list(CacheImpl._locator_classes)

    def broken() -> list[type]:
        raise AttributeError("no InTreeCacheLocator")

    monkeypatch.setattr(cache, "_installed", [])
    monkeypatch.setattr(cache, "_failed", [])
    monkeypatch.setattr(cache, "_make_locators", broken)
    with pytest.warns(RuntimeWarning, match="default cache"):
        assert cache.install() is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cache.install() is False  # warned once
    assert CacheImpl._locator_classes == before
