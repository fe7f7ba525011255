"""The audit ledger ``results.jsonl``: one JSON line per finished image, appended whole and
flushed, so that a process killed at any moment loses at most the image being written.

A line is written with one ``write`` of the full text and its newline, then flushed to the
operating system, which keeps it whatever happens to the process. The file is ``fsync``-ed at
most once a second and on closing (one ``fsync`` per line cost ~4 ms an image), so a power cut
loses at most the last second's lines, which a rerun redoes. A process killed mid-write leaves a
torn last line without its newline: opening the ledger cuts it off. When an id has several lines (a failed image retried), the last one
counts; ``compact`` rewrites the file with one line per id.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fixtrace.errors import OutputError
from fixtrace.files import output_error, strict_json, write_atomic

LEDGER_FILE = "results.jsonl"
OK, ERROR = "ok", "error"
#: Seconds between two ``fsync`` of the ledger.
SYNC_INTERVAL_S = 1.0


class Ledger:
    """An open ledger: the status of every id recorded so far, and appends.

    Args:
        path: the ``results.jsonl`` file (created if missing).

    Raises:
        OutputError: the file cannot be read, repaired or opened for appending.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        #: Each recorded id's last status (``ok`` or ``error``).
        self.status: dict[str, str] = {}
        #: Whether a torn last line was cut off when the ledger was opened.
        self.repaired = _cut_torn_tail(path)
        for record in self.records():
            self.status[str(record["id"])] = str(record["status"])
        try:
            self._file = open(path, "ab")  # held open for the audit's appends
        except OSError as exc:
            raise output_error(exc, path) from None
        self._synced = time.monotonic()

    def done(self, item_id: str) -> bool:
        """Whether ``item_id`` finished well (a failed one is tried again)."""
        return self.status.get(item_id) == OK

    def counts(self) -> dict[str, int]:
        """Images, ok and failed, as recorded."""
        ok = sum(s == OK for s in self.status.values())
        return {"images": len(self.status), "ok": ok, "failed": len(self.status) - ok}

    def append(self, record: dict[str, Any]) -> None:
        """Write one record as one line, flushed (synced to disk when a second has passed since
        the last sync).

        Raises:
            OutputError: the write failed (``fatal`` when the disk is full).
        """
        line = (strict_json(record) + "\n").encode("utf-8")
        try:
            self._file.write(line)
            self._file.flush()
            if time.monotonic() - self._synced >= SYNC_INTERVAL_S:
                self._sync()
        except OSError as exc:
            raise output_error(exc, self.path) from None
        self.status[str(record["id"])] = str(record["status"])

    def _sync(self) -> None:
        os.fsync(self._file.fileno())
        self._synced = time.monotonic()

    def records(self) -> Iterator[dict[str, Any]]:
        """Every whole line of the file that parses as a record, in order (streamed)."""
        return read_records(self.path)

    def compact(self) -> None:
        """Rewrite the file atomically, streamed, with only the last line of each id (in the
        order those lines were written); a file with nothing to drop is left as it is.

        Raises:
            OutputError: the rewrite failed.
        """
        self._file.flush()
        keep, lines = _last_lines(self.path)
        if len(keep) == lines:
            return

        def write(temporary: Path) -> None:
            with temporary.open("w", encoding="utf-8", errors="surrogateescape", newline="\n") as out:
                for n, (line, _) in enumerate(_lines(self.path, whole=True)):
                    if n in keep:
                        out.write(line)
                out.flush()
                os.fsync(out.fileno())

        self._file.close()
        write_atomic(self.path, write)
        self._file = open(self.path, "ab")

    def close(self) -> None:
        """Sync and close the file.

        Raises:
            OutputError: the last sync failed.
        """
        try:
            if not self._file.closed:
                self._file.flush()
                self._sync()
        except OSError as exc:
            raise output_error(exc, self.path) from None
        finally:
            self._file.close()


class LatestRecords:
    """A ledger as people read it: the last record of each id (a retried image counts once), in
    the order those lines were written, streamed in two passes over the file.

    Args:
        path: the ``results.jsonl`` file (no records when it is missing).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        #: Lines skipped on the last pass: not a record, or a torn last line.
        self.unreadable = 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        keep, lines = _last_lines(self.path)
        self.unreadable = sum(record is None for _, record in _lines(self.path, whole=True))
        for n, (_, record) in enumerate(_lines(self.path, whole=True)):
            if n in keep and record is not None:
                yield record


def _last_lines(path: Path) -> tuple[set[int], int]:
    """(the numbers of the lines that are the last record of their id, how many lines in all)."""
    last: dict[str, int] = {}
    lines = 0
    for n, (_, record) in enumerate(_lines(path, whole=True)):
        lines = n + 1
        if record is not None:
            last[str(record["id"])] = n
    return set(last.values()), lines


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    """The records of a ledger file, torn or unparsable lines skipped (none when it is missing)."""
    return (record for _, record in _lines(path) if record is not None)


def _lines(path: Path, whole: bool = False) -> Iterator[tuple[str, dict[str, Any] | None]]:
    """(line, record) for every line ending in a newline; the record is None for a line that is
    not a record with an id and a status, and such lines (and a torn last line) are skipped unless
    ``whole``."""
    if not path.exists():
        return
    try:
        with path.open(encoding="utf-8", errors="surrogateescape", newline="\n") as f:
            for line in f:
                if not line.endswith("\n"):  # torn by a crash mid-write
                    if whole:
                        yield line, None
                    return
                try:
                    record = json.loads(line)
                except ValueError:
                    record = None
                if not (isinstance(record, dict) and "id" in record and record.get("status") in (OK, ERROR)):
                    record = None
                if record is not None or whole:
                    yield line, record
    except OSError as exc:
        raise OutputError(f"cannot read the ledger {path}: {exc.strerror or exc}") from None


def _cut_torn_tail(path: Path) -> bool:
    """Truncate a last line left without its newline; True when something was cut."""
    try:
        with path.open("rb+") as f:
            size = f.seek(0, os.SEEK_END)
            if size == 0:
                return False
            f.seek(size - 1)
            if f.read(1) == b"\n":
                return False
            end = size
            while end > 0:  # back to the last newline, a block at a time
                start = max(0, end - 65536)
                f.seek(start)
                block = f.read(end - start)
                cut = block.rfind(b"\n")
                if cut >= 0:
                    f.truncate(start + cut + 1)
                    break
                end = start
            else:
                f.truncate(0)
            f.flush()
            os.fsync(f.fileno())
            return True
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise output_error(exc, path) from None
