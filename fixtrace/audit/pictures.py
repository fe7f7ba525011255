"""The pictures of one audited image: per method, ``overlay.jpg`` (the overlay ``fixtrace explain``
draws, as a JPEG) and a small ``thumb.jpg`` for the report, under ``items/<id>/<method>/``."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from fixtrace.explanation import Explanation
from fixtrace.files import method_folder, replace_folder

ITEMS = "items"
#: Longest side of a thumbnail, in pixels.
THUMB_SIZE = 160
#: JPEG quality of the overlay. A JPEG, not a PNG: on photos PNG took 11.6 ms per 400 px overlay
#: even at zlib level 1, JPEG 0.8 ms, and the file is a fifth the size (178 KB -> 33 KB).
OVERLAY_QUALITY = 90
OVERLAY, THUMB = "overlay.jpg", "thumb.jpg"


def item_folder(item_id: str) -> Path:
    """``items/<id>``, relative to the audit folder."""
    return Path(ITEMS, *item_id.split("/"))


def write_pictures(audit: Path, item_id: str, by_method: dict[str, Explanation]) -> dict[str, dict[str, object]]:
    """Write every method's overlay and thumbnail of one image, replacing an earlier try's folder
    whole (a crash leaves the old folder or the new one, never a mix).

    Args:
        audit: the audit folder.
        item_id: the image's id.
        by_method: its explanation per method label.

    Returns:
        Per method label: ``overlay`` and ``thumb`` paths (relative to the audit folder) and the
        milliseconds spent (``write_ms``).

    Raises:
        OutputError: a write failed (``fatal`` when the disk is full).
    """
    relative = item_folder(item_id)

    def fill(folder: Path) -> dict[str, dict[str, object]]:
        written: dict[str, dict[str, object]] = {}
        for label, e in by_method.items():
            t0 = time.perf_counter()
            name = method_folder(label)
            (folder / name).mkdir()
            picture = e.overlay()
            picture.save(folder / name / OVERLAY, quality=OVERLAY_QUALITY)
            picture.thumbnail((THUMB_SIZE, THUMB_SIZE))
            picture.save(folder / name / THUMB, quality=85)
            written[label] = {
                "overlay": (relative / name / OVERLAY).as_posix(),
                "thumb": (relative / name / THUMB).as_posix(),
                "write_ms": (time.perf_counter() - t0) * 1e3,
            }
        return written

    return replace_folder(audit / relative, fill)


def sweep_interrupted(audit: Path) -> int:
    """Remove what a killed audit left half-done: the hidden ``.NAME.XXXX.tmp`` / ``.old`` folders
    of a picture folder being replaced (anywhere under ``items/``, as ids may hold folders) and the
    hidden ``.tmp`` files of a ledger or manifest being rewritten. Run under the audit's lock.

    Returns:
        How many were removed.
    """
    removed = 0
    for entry in os.scandir(audit) if audit.is_dir() else ():
        if _interrupted(entry.name) and entry.is_file(follow_symlinks=False):
            Path(entry.path).unlink(missing_ok=True)
            removed += 1
    for root, folders, _ in os.walk(audit / ITEMS):
        for name in [f for f in folders if _interrupted(f)]:
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)
            folders.remove(name)
            removed += 1
    return removed


def _interrupted(name: str) -> bool:
    """A temporary name of ``fixtrace.files`` (``replace_folder``, ``write_atomic``)."""
    return name.startswith(".") and name.endswith((".tmp", ".old"))
