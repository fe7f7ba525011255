"""The file system, safely: inputs checked before they are opened, paths kept inside their folder,
outputs written atomically as standard JSON under names that cannot escape or collide."""

from __future__ import annotations

import errno
import functools
import json
import math
import os
import shutil
import stat
import tempfile
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from fixtrace.errors import FixtraceError, OutputError

#: errno values that mean no later write can succeed either.
DISK_FULL = {errno.ENOSPC, errno.EDQUOT}


def check_input_file(path: str | os.PathLike, what: str, error: type[FixtraceError]) -> Path:
    """Refuse anything but an existing regular file (symbolic links followed), before opening it.

    Args:
        path: the path as given.
        what: what the file is, for the message ("model file", "image file", ...).
        error: the error class to raise.

    Returns:
        The path.

    Raises:
        error: missing, a broken symbolic link, a folder, a FIFO, device or socket, or unreadable.
    """
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        if os.path.islink(path):
            raise error(f"{what} {path} is a broken symbolic link (its target {os.readlink(path)} does not exist)") from None
        raise error(f"{what} not found: {path}") from None
    except PermissionError:
        raise error(f"{what} {path} cannot be read: permission denied") from None
    except (OSError, ValueError) as exc:
        raise error(f"{what} {path} cannot be opened: {getattr(exc, 'strerror', None) or exc}") from None
    if stat.S_ISDIR(mode):
        raise error(f"{what} {path} is a folder, not a file")
    if not stat.S_ISREG(mode):
        raise error(f"{what} {path} is not a regular file (it is a {_kind(mode)})")
    return path


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "special file"


def inside(
    folder: str | os.PathLike,
    location: str,
    what: str,
    error: type[FixtraceError],
    *,
    folder_word: str = "the model's folder",
    also_inside: Iterable[str | os.PathLike] = (),
) -> Path:
    """Resolve a relative ``location`` against ``folder`` and refuse it unless it stays inside.

    Absolute locations, NUL bytes, and locations that lead outside ``folder`` (by ``..``, with
    either slash, or through a symbolic link whose target lies outside ``folder`` and every folder
    of ``also_inside``) are refused. The path itself need not exist.

    Args:
        folder: the folder the location is relative to.
        location: the location as written in the file that names it.
        what: what it is, for the message ("external data of tensor 'W'").
        error: the error class to raise.
        folder_word: how the message names ``folder``.
        also_inside: other folders a resolved path may lie in (a symlinked model's real folder).

    Returns:
        The resolved path.

    Raises:
        error: the location is empty, absolute, holds a NUL byte, or leads outside.
    """
    if not location:
        raise error(f"{what} has no location")
    if "\0" in location:
        raise error(f"{what}: its location {location!r} holds a NUL byte")
    parts = [p for p in location.replace("\\", "/").split("/") if p]
    if location.startswith(("/", "\\")) or os.path.isabs(location) or (parts and len(parts[0]) == 2 and parts[0][1] == ":"):
        raise error(f"{what}: its location {location!r} is an absolute path; only paths inside {folder_word} are read")
    joined = os.path.join(folder, *parts)
    real = os.path.realpath(joined)
    roots = [os.path.realpath(folder), *(os.path.realpath(f) for f in also_inside)]
    if not any(real == r or real.startswith(r.rstrip(os.sep) + os.sep) for r in roots):
        lexical = os.path.relpath(os.path.normpath(joined), os.path.normpath(folder)).split(os.sep)[0] == ".."
        how = "leads" if lexical else f"resolves through a symbolic link to {real},"
        raise error(f"{what}: its location {location!r} {how} outside {folder_word} ({folder})")
    return Path(real)


def strict_json(value: Any, **options: Any) -> str:
    """JSON text that any parser accepts: NaN and infinities become null, numpy scalars and arrays
    plain numbers and lists, paths and other objects their text, lone surrogates escapes."""
    return json.dumps(_plain(value), allow_nan=False, ensure_ascii=False, **options)


def _plain(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {str(_plain(k)): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return _plain(value.tolist())
    return _plain(os.fspath(value) if isinstance(value, os.PathLike) else str(value))


def write_atomic(path: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """Write a file through a temporary sibling renamed over ``path``: readers (and a crash) see the
    old file or the new one, never half of one.

    Args:
        path: the file to (re)place.
        write: writes the content to the temporary path it is given.

    Raises:
        OutputError: the write failed (``fatal`` when the disk is full); nothing is left behind.
    """
    path = Path(path)
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name[:40]}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        os.chmod(name, _created_mode(0o666))
    except OSError as exc:
        raise output_error(exc, path) from None
    temporary = Path(name)
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException as exc:
        _remove(temporary)
        if isinstance(exc, OSError):
            raise output_error(exc, path) from None
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """``write_atomic`` for UTF-8 text."""

    def write(p: Path) -> None:
        p.write_text(text, encoding="utf-8")

    write_atomic(path, write)


def write_json_atomic(path: str | os.PathLike, value: Any, **options: Any) -> None:
    """``write_atomic`` for standard JSON (see ``strict_json``)."""
    write_text_atomic(path, strict_json(value, **options))


def write_npy_atomic(path: str | os.PathLike, value: Any) -> None:
    """``write_atomic`` for a .npy array, at exactly ``path`` (``np.save`` given a name adds ``.npy``)."""

    def write(p: Path) -> None:
        with open(p, "wb") as f:
            np.save(f, value, allow_pickle=False)

    write_atomic(path, write)


#: Free bytes under which a failed write is put down to a full disk (numpy's short writes carry no errno).
NEARLY_FULL = 1 << 20


class Checkpoint:
    """A file rewritten whole as a run goes, often enough to keep what was finished and rarely
    enough that rewriting stays a small share of the run: after each rewrite the next waits at
    least ``interval_s`` and ``1 / share`` times what the rewrite took, so a growing file costs
    O(n) in total instead of O(n^2) when rewritten after every item.

    Args:
        write: rewrites the file (atomically).
        share: the most of the run's time rewriting may take.
        interval_s: the least time between two rewrites.
    """

    def __init__(self, write: Callable[[], None], share: float = 0.05, interval_s: float = 1.0) -> None:
        self._write = write
        self._share = share
        self._interval_s = interval_s
        self._due = 0.0  # the first item is written at once
        self.pending = False

    def changed(self) -> None:
        """Note a change; rewrite when one is due.

        Raises:
            OutputError: the rewrite failed.
        """
        self.pending = True
        if time.monotonic() >= self._due:
            self.flush()

    def flush(self) -> None:
        """Rewrite now if anything changed since the last rewrite.

        Raises:
            OutputError: the rewrite failed.
        """
        if not self.pending:
            return
        start = time.monotonic()
        self._write()
        self.pending = False
        spent = time.monotonic() - start
        self._due = start + max(self._interval_s, spent / self._share)


def make_folder(path: str | os.PathLike) -> Path:
    """``path`` created with its parents (kept when it is there).

    Raises:
        OutputError: it cannot be made (a file in the way, no permission, a full disk).
    """
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise output_error(exc, folder) from None
    return folder


def output_error(exc: OSError, path: str | os.PathLike) -> OutputError:
    """An OutputError naming the path and the cause; fatal when the disk is full (a short write,
    which numpy reports without an errno, counts: the space another writer thread freed since
    may hide it from the free-space check)."""
    short_write = exc.errno is None and " requested and " in str(exc) and str(exc).endswith(" written")
    fatal = exc.errno in DISK_FULL or short_write or _free_bytes(Path(path)) < NEARLY_FULL
    cause = "the disk is full" if fatal else (exc.strerror or str(exc))
    return OutputError(f"cannot write {path}: {cause}", fatal=fatal)


def _free_bytes(path: Path) -> int:
    """Free bytes on the file system holding ``path`` (or its nearest existing parent)."""
    for folder in (path, *path.parents):
        try:
            return shutil.disk_usage(folder).free
        except OSError:
            continue
    return NEARLY_FULL


def _created_mode(mode: int) -> int:
    """``mode`` less the process umask: what ``open`` or ``mkdir`` would have given (tempfile's
    private 0600 / 0700 would hide the outputs from the user's group)."""
    return mode & ~_umask()


_UMASK_LOCK = threading.Lock()


@functools.cache
def _umask() -> int:
    """The process umask, read once, where it can be read without setting it (Linux); elsewhere
    set and restored at once."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:  # writer threads may ask at once: one sets and restores at a time
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def replace_folder(folder: Path, fill: Callable[[Path], Any]) -> Any:
    """Fill a new temporary folder beside ``folder``, then put it in ``folder``'s place: a failure
    leaves the old folder (if any) untouched and no half-written one.

    Args:
        folder: the folder to (re)place; a file or symbolic link in its place is refused.
        fill: writes the content into the folder it is given; its result is returned.

    Raises:
        OutputError: ``folder`` is taken by something that is not a folder, or a write failed.
    """
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        what = "a symbolic link" if folder.is_symlink() else "a file"
        raise OutputError(f"cannot write {folder}: {what} is in the way (fixtrace writes a folder there)")
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        temporary = Path(tempfile.mkdtemp(prefix=f".{folder.name[:40]}.", suffix=".tmp", dir=folder.parent))
        os.chmod(temporary, _created_mode(0o777))
    except OSError as exc:
        raise output_error(exc, folder) from None
    try:
        result = fill(temporary)
        old = None
        if folder.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{folder.name[:40]}.", suffix=".old", dir=folder.parent))
            os.replace(folder, old / "x")
        os.replace(temporary, folder)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return result
    except BaseException as exc:
        shutil.rmtree(temporary, ignore_errors=True)
        if isinstance(exc, OSError):
            raise output_error(exc, folder) from None
        raise


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


#: Output names fixtrace itself writes at the top of an output folder.
RESERVED = {"summary.json", "evaluation.md", "evaluation.csv", "evaluation.json"}
MAX_NAME = 60


def safe_name(text: str, fallback: str = "image") -> str:
    """A folder name from free text: letters, digits, ``_ . -`` only (others become ``_``), no
    leading dot (never ``.``, ``..`` or hidden), at most MAX_NAME characters, Unicode NFC."""
    text = unicodedata.normalize("NFC", text.encode("utf-8", "backslashreplace").decode("utf-8"))
    kept = "".join(ch if ch.isalnum() or ch in "_.-" else "_" for ch in text)
    while "__" in kept:
        kept = kept.replace("__", "_")
    return kept.strip("_.-")[:MAX_NAME].strip("_.-") or fallback


def method_folder(label: str) -> str:
    """The folder name of a method's label (``occlusion:patch=32`` -> ``occlusion_patch_32``,
    ``gradcam++`` -> ``gradcampp``, apart from ``gradcam``)."""
    return safe_name(label.replace(":", "_").replace("+", "p"), "method")


class UniqueNames:
    """Hands out folder names that differ from each other and from RESERVED, ignoring case (as a
    case-insensitive file system would): ``cat``, ``cat_2``, ``cat_3`` ..."""

    def __init__(self, taken: Iterable[str] = ()) -> None:
        self._used = {n.casefold() for n in (*RESERVED, *taken)}

    def take(self, text: str) -> str:
        """A unique safe name for ``text``."""
        base = safe_name(text)
        name, k = base, 1
        while name.casefold() in self._used:
            k += 1
            name = f"{base}_{k}"
        self._used.add(name.casefold())
        return name
