"""The images of an audit, streamed: folders (with their sub-folders), glob patterns, and lists
of paths in a ``.txt`` or ``.csv`` file, each image with a stable id (its path relative to its
root, made safe as a folder name)."""

from __future__ import annotations

import csv
import glob
import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from fixtrace.errors import FixtraceError, OptionError
from fixtrace.files import check_input_file, safe_name

#: Files that list images instead of being one.
LIST_SUFFIXES = {".txt", ".csv"}
#: The column of a ``.csv`` list that holds the paths (else its first column).
IMAGE_COLUMN = "image"


@dataclass(frozen=True)
class AuditInput:
    """One image to audit.

    Attributes:
        id: stable id: the path relative to its root (folder, glob prefix or list's folder),
            every part a safe name; a short hash is added when that changed the text.
        path: the image's path.
    """

    id: str
    path: Path


def iter_inputs(sources: Sequence[str]) -> Iterator[AuditInput]:
    """Every image the sources name, in order, never all held at once.

    A folder is searched with its sub-folders (sorted; hidden files and folders skipped, links to
    folders not followed); a pattern with ``*``, ``?`` or ``[`` is expanded (``**`` crosses
    folders), sorted per pattern; a ``.txt`` file lists one path per line (blank lines and
    ``#`` comments skipped), a ``.csv`` file one per row (a header row, then the ``image``
    column or the first); listed paths are relative to the list's folder. Any other path is an
    image (a missing or odd one fails on its own when it is read). An id met twice gets
    ``~2``, ``~3`` ...

    Raises:
        FixtraceError: a folder holds no image, a pattern matches nothing, a list cannot be read.
    """
    seen: dict[str, int] = {}
    for source in sources:
        for root, path in _expand(source):
            key = _item_id(root, path)
            count = seen[key] = seen.get(key, 0) + 1
            yield AuditInput(key if count == 1 else f"{key}~{count}", path)


def count_inputs(sources: Sequence[str]) -> int:
    """How many images ``iter_inputs`` yields (one streamed pass; raises as it does)."""
    return sum(1 for _ in _all(sources))


def _all(sources: Sequence[str]) -> Iterator[tuple[Path, Path]]:
    for source in sources:
        yield from _expand(source)


def _expand(source: str) -> Iterator[tuple[Path, Path]]:
    """(root, image path) pairs of one source."""
    from fixtrace.cli import IMAGE_SUFFIXES

    path = Path(source)
    if path.is_dir():
        found = False
        for image in _walk(path, IMAGE_SUFFIXES):
            found = True
            yield path, image
        if not found:
            raise FixtraceError(f"no images in folder {path} or its sub-folders (hidden files skipped)")
    elif glob.has_magic(source) and not path.exists():
        matches = sorted(glob.iglob(source, recursive=True))  # names only, one pattern at a time
        if not matches:
            raise OptionError(f"no file matches the pattern {source!r}")
        root = _static_prefix(source)
        yield from ((root, Path(m)) for m in matches if not Path(m).is_dir())
    elif path.suffix.lower() in LIST_SUFFIXES:
        yield from ((path.parent, image) for image in _listed(path))
    else:
        yield path.parent, path


def _walk(folder: Path, suffixes: set[str]) -> Iterator[Path]:
    """Images under ``folder``, folder by folder, each folder's names sorted."""
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and Path(name).suffix.lower() in suffixes:
                yield Path(root) / name


def _static_prefix(pattern: str) -> Path:
    """The folder a glob pattern starts in (its parts before the first wildcard)."""
    parts: list[str] = []
    for part in Path(pattern).parts[:-1]:
        if glob.has_magic(part):
            break
        parts.append(part)
    return Path(*parts) if parts else Path(".")


def _listed(path: Path) -> Iterator[Path]:
    """The paths a ``.txt`` or ``.csv`` list names, relative to its folder."""
    check_input_file(path, "image list", FixtraceError)
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            if path.suffix.lower() == ".txt":
                for line in f:
                    text = line.strip()
                    if text and not text.startswith("#"):
                        yield path.parent / text
                return
            reader = csv.reader(f)
            header = next(reader, None)
            column = header.index(IMAGE_COLUMN) if header and IMAGE_COLUMN in header else 0
            for row in reader:
                if len(row) > column and row[column].strip():
                    yield path.parent / row[column].strip()
    except UnicodeDecodeError as exc:
        raise FixtraceError(f"image list {path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except csv.Error as exc:
        raise FixtraceError(f"image list {path} is not a readable CSV file: {exc}") from None
    except OSError as exc:
        raise FixtraceError(f"image list {path} cannot be read: {exc.strerror or exc}") from None


def _item_id(root: Path, path: Path) -> str:
    """The path relative to ``root`` (its name when outside), each part a safe name."""
    try:
        relative = Path(os.path.relpath(path, root))
    except ValueError:  # another drive
        relative = Path(path.name)
    if relative.parts and relative.parts[0] == "..":
        relative = Path(path.name)
    text = relative.as_posix()
    safe = "/".join(safe_name(part) for part in relative.parts)
    if safe != text:
        safe += "-" + hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return safe
