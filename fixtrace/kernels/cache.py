"""Numba on-disk cache keyed on the kernel sources, not only on the kernel's own file.

Numba stamps a cached kernel with its own file only, so an edit to a ``register_jitable``
body in ``shared/`` kept the stale machine code. ``install()`` puts locators in front of
numba's list (``numba.core.caching.CacheImpl._locator_classes``) that take only functions
defined under ``fixtrace/kernels`` and stamp them with a hash of the kernel's file and of
every ``.py`` file under ``shared/``. They keep numba's cache folders: ``NUMBA_CACHE_DIR``
when set, else ``__pycache__`` beside the kernel, else numba's user-wide cache dir (read-only
installs). ``NUMBA_CACHE_LOCATOR_CLASSES`` bypasses them, as it bypasses numba's own list.

If numba's internals differ from what this module expects, it warns once and leaves numba's
default caching in place.
"""

from __future__ import annotations

import functools
import hashlib
import os
import warnings
from collections.abc import Callable
from pathlib import Path

#: Folder whose functions get the kernel stamp, and the folder of the shared bodies.
KERNELS_DIR = Path(__file__).resolve().parent
SHARED_DIR = KERNELS_DIR / "shared"
#: Bumped when the stamp's layout changes, so old indexes read as stale.
_STAMP_VERSION = "fixtrace-kernels-1"

_installed: list[type] = []
_failed: list[str] = []


@functools.cache
def _hash_file(path: str, mtime_ns: int, size: int) -> str:
    # mtime_ns and size are only there to key the memo: an edited file is hashed again.
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _file_hash(path: Path) -> str:
    st = path.stat()
    return _hash_file(str(path), st.st_mtime_ns, st.st_size)


def shared_sources_hash() -> str:
    """Hash of every ``.py`` file under ``shared/`` (names and contents).

    Returns:
        A hex sha256 digest.
    """
    h = hashlib.sha256()
    for path in sorted(SHARED_DIR.rglob("*.py")):
        h.update(path.relative_to(SHARED_DIR).as_posix().encode())
        h.update(_file_hash(path).encode())
    return h.hexdigest()


def source_stamp(py_file: str | os.PathLike[str]) -> tuple[str, str, str]:
    """The cache stamp of a kernel defined in ``py_file``.

    Args:
        py_file: the kernel's source file.

    Returns:
        (layout version, hash of ``py_file``, hash of the shared bodies); numba drops a
        cache index whose stamp differs.
    """
    return (_STAMP_VERSION, _file_hash(Path(py_file)), shared_sources_hash())


def is_kernel_file(py_file: str | os.PathLike[str]) -> bool:
    """Whether ``py_file`` lies under ``fixtrace/kernels``."""
    try:
        return Path(py_file).resolve().is_relative_to(KERNELS_DIR)
    except (OSError, ValueError):
        return False


def _make_locators() -> list[type]:
    """Kernel-stamped subclasses of numba's file-backed locators, in numba's order.

    Raises:
        ImportError, AttributeError: numba's caching internals are not the expected ones.
    """
    from numba.core import caching

    bases = [caching.UserProvidedCacheLocator, caching.InTreeCacheLocator, caching.UserWideCacheLocator]

    class KernelStampMixin:
        """Stamp on the kernel sources; decline functions outside ``fixtrace/kernels``."""

        _py_file: str

        def get_source_stamp(self) -> tuple[str, str, str]:
            return source_stamp(self._py_file)

        @classmethod
        def from_function(cls, py_func: Callable[..., object], py_file: str) -> object:
            if not is_kernel_file(py_file):
                return None
            return super().from_function(py_func, py_file)  # type: ignore[misc]  # numba's classmethod, untyped

    for base in bases:
        # Fail here, not at the first kernel, if the base lost what the mixin builds on.
        for name in ("get_source_stamp", "from_function", "get_cache_path", "get_disambiguator"):
            getattr(base, name)
    return [type(f"Kernel{base.__name__}", (KernelStampMixin, base), {}) for base in bases]


def install() -> bool:
    """Register the kernel locators with numba (idempotent).

    Returns:
        True when they are registered; False when numba's internals differ (warned once,
        numba's default caching stays).
    """
    if _installed:
        return True
    if _failed:
        return False
    try:
        from numba.core.caching import CacheImpl

        classes = CacheImpl._locator_classes
        if not isinstance(classes, list):
            raise TypeError(f"CacheImpl._locator_classes is a {type(classes).__name__}, not a list")
        locators = _make_locators()
    except (ImportError, AttributeError, TypeError) as exc:
        _failed.append(str(exc))
        warnings.warn(
            f"fixtrace: numba's cache internals differ ({exc}); kernels keep numba's default cache, "
            "which misses edits to fixtrace/kernels/shared",
            RuntimeWarning,
            stacklevel=2,
        )
        return False
    classes[:0] = locators  # type: ignore[assignment]  # numba's list of locator classes
    _installed.extend(locators)
    return True
