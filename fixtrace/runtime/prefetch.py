"""Read ahead: load the next items on a few threads while the caller works on the current ones,
in order, with at most a fixed number loaded and waiting (bounded memory)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

from fixtrace.errors import FixtraceError

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class Loaded(Generic[T, R]):
    """One item with what loading it gave.

    Attributes:
        item: the item.
        value: the loaded value (None when it failed).
        error: why loading failed (None when it worked).
        ms: milliseconds the load took (on its thread).
    """

    item: T
    value: R | None
    error: FixtraceError | None
    ms: float


def prefetch(items: Iterable[T], load: Callable[[T], R], workers: int, ahead: int) -> Generator[Loaded[T, R], None, None]:
    """``load`` every item on ``workers`` threads, yielding them in order; at most ``ahead``
    items are loading or loaded and not yet taken. ``workers=0`` loads in the caller's thread.

    A FixtraceError of ``load`` is handed over in ``Loaded.error``; other exceptions are raised
    when their item's turn comes. An exception of ``items`` itself is raised after the items
    before it. Closing the iterator drops what was read ahead (the loads under way finish first,
    so no reader outlives it).
    """
    if workers <= 0:
        yield from (_timed(load, item) for item in items)
        return
    pending: deque[tuple[T, Future[Loaded[T, R]]]] = deque()
    stream = iter(items)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fixtrace-read")
    try:
        while True:
            try:
                item = next(stream)
            except StopIteration:
                break
            except BaseException:
                while pending:  # the items before the failing one, then its error
                    yield pending.popleft()[1].result()
                raise
            pending.append((item, pool.submit(_timed, load, item)))
            if len(pending) >= max(ahead, 1):
                yield pending.popleft()[1].result()
        while pending:
            yield pending.popleft()[1].result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _timed(load: Callable[[T], R], item: T) -> Loaded[T, R]:
    t0 = time.perf_counter()
    try:
        value, error = load(item), None
    except FixtraceError as exc:
        value, error = None, exc
    return Loaded(item, value, error, (time.perf_counter() - t0) * 1e3)
