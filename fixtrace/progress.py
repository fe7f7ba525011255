"""A dependency-free progress line on stderr for long runs."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Prints ``[k/n] label  elapsed, eta`` as work advances; a bar redrawn in place on a terminal.

    Args:
        total: number of items.
        stream: where to write (stderr by default).
        enabled: False silences it.
    """

    def __init__(self, total: int, stream: TextIO | None = None, enabled: bool = True) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.enabled = enabled and total > 1
        self.done = 0
        self.start = time.perf_counter()
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def step(self, label: str) -> None:
        """Record one finished item."""
        self.done += 1
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.start
        eta = elapsed / self.done * (self.total - self.done)
        width = 24
        filled = round(width * self.done / self.total)
        bar = "#" * filled + "-" * (width - filled)
        text = f"[{bar}] {self.done}/{self.total} {label[:40]:40s} {elapsed:6.1f}s eta {eta:6.1f}s"
        if self.tty:
            self.stream.write("\r" + text + ("\n" if self.done == self.total else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
