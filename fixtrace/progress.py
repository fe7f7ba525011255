"""A dependency-free progress line on stderr for long runs."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Prints ``[k/n] label  elapsed, rate, eta`` as work advances; a bar redrawn in place on a terminal.

    Args:
        total: number of items.
        stream: where to write (stderr by default).
        enabled: False silences it.
        done: items already finished before this run (a resumed job): counted in ``k/n``, not
            in the rate.
        interval: at least this many seconds between two lines when the stream is not a
            terminal (the last line is always written).
    """

    def __init__(
        self, total: int, stream: TextIO | None = None, enabled: bool = True, done: int = 0, interval: float = 0.0
    ) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.enabled = enabled and total - done > 1
        self.done = done
        self.resumed = done
        self.interval = interval
        self.start = time.perf_counter()
        self.last = -float("inf")
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    @property
    def rate(self) -> float:
        """Items per second in this run."""
        elapsed = time.perf_counter() - self.start
        return (self.done - self.resumed) / elapsed if elapsed > 0 else 0.0

    def step(self, label: str) -> None:
        """Record one finished item."""
        self.done += 1
        if not self.enabled:
            return
        now = time.perf_counter()
        last = self.done >= self.total
        if not self.tty and not last and now - self.last < self.interval:
            return
        self.last = now
        elapsed = now - self.start
        rate = self.rate
        eta = (self.total - self.done) / rate if rate > 0 else 0.0
        width = 24
        filled = round(width * min(self.done, self.total) / max(self.total, 1))
        bar = "#" * filled + "-" * (width - filled)
        text = f"[{bar}] {self.done}/{self.total} {label[:40]:40s} {elapsed:6.1f}s {rate:6.2f}/s eta {eta:6.1f}s"
        if self.tty:
            self.stream.write("\r" + text + ("\n" if last else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
