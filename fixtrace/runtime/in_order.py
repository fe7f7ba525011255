"""Work on a few threads, finished in the order it was handed in: the output writers of
``fixtrace explain`` and ``fixtrace audit`` (pictures encoded on threads, lines recorded in order
on the caller's thread)."""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from types import TracebackType
from typing import Generic, TypeVar

from fixtrace.errors import OutputError

T = TypeVar("T")
R = TypeVar("R")


class InOrder(Generic[T, R]):
    """``work(item)`` on ``workers`` threads; ``finish(item, future)`` on the caller's thread, in
    the order the items were handed in, as soon as the first waiting one is done, and always
    before more than ``waiting`` are waiting (bounded memory).

    Used as a context manager. Leaving the block normally finishes every item. Leaving it by an
    exception (an interrupt, a full disk raised by ``finish``) drops the work not started, waits
    for the work under way and finishes it, except work that found the disk full; errors of those
    late ``finish`` calls are dropped, since the exception under way is the one to tell.

    Args:
        work: the slow part (it must release the GIL to gain anything).
        finish: takes the item and its done future (``future.result()`` raises ``work``'s error).
        workers: threads.
        waiting: items handed in and not yet finished, at most.
        name: the threads' name prefix.
    """

    def __init__(
        self,
        work: Callable[[T], R],
        finish: Callable[[T, Future[R]], None],
        workers: int,
        waiting: int,
        name: str = "fixtrace-write",
    ) -> None:
        self._work, self._finish, self._waiting = work, finish, max(waiting, 1)
        self._pool = ThreadPoolExecutor(max_workers=max(workers, 1), thread_name_prefix=name)
        self._pending: deque[tuple[T, Future[R]]] = deque()

    def submit(self, item: T) -> None:
        """Hand in one item; finish the first waiting ones that are done, or too many."""
        self._pending.append((item, self._pool.submit(self._work, item)))
        while self._pending and (len(self._pending) > self._waiting or self._pending[0][1].done()):
            self._finish_first()

    def _finish_first(self) -> None:
        # Taken off once done, before finishing: an interrupt while waiting leaves it to
        # __exit__, and a finish that fails part-way is never run twice.
        wait([self._pending[0][1]])
        self._finish(*self._pending.popleft())

    def __enter__(self) -> InOrder[T, R]:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        if error is None:
            try:
                while self._pending:
                    self._finish_first()
            except BaseException:
                self._stop()
                raise
            self._pool.shutdown(wait=True)
            return
        self._stop()

    def _stop(self) -> None:
        """After an error: the work under way waited for and finished, the rest dropped."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        for item, future in self._pending:
            if future.cancelled() or _disk_full(future.exception()):
                continue
            with contextlib.suppress(Exception):
                self._finish(item, future)


def _disk_full(error: BaseException | None) -> bool:
    return isinstance(error, OutputError) and error.fatal
