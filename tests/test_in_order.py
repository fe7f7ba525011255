"""InOrder: work on threads, finished in the order handed in, a bounded number waiting; on an
error the work under way is finished (not a disk-full one) and the rest dropped."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future

import pytest

from fixtrace.errors import OutputError
from fixtrace.runtime.in_order import InOrder


def test_finished_in_order_with_at_most_waiting_waiting():
    finished: list[int] = []
    most = [0]

    def work(k: int) -> int:
        time.sleep(0.002 * (7 - k % 7))  # later items often done first
        return k * k

    def finish(k: int, future: Future[int]) -> None:
        finished.append(future.result())

    with InOrder(work, finish, workers=3, waiting=4) as line:
        for k in range(30):
            line.submit(k)
            most[0] = max(most[0], len(line._pending))
    assert finished == [k * k for k in range(30)]
    assert most[0] <= 4


def test_an_error_finishes_the_work_under_way_and_drops_the_rest():
    """A full disk raised while finishing item 2: the items already being written (3, 4) are
    finished, except one that also found the disk full (4), and the rest is dropped unless a
    thread had started it; a finish that fails part-way is not run again; no writer thread is
    left."""
    started = threading.Barrier(3)
    finished: list[int] = []

    def work(k: int) -> int:
        if k in (2, 3, 4):
            started.wait(5)  # 2, 3 and 4 under way together
        if k in (2, 4):
            raise OutputError("cannot write: the disk is full", fatal=True)
        return k

    def finish(k: int, future: Future[int]) -> None:
        finished.append(k)
        future.result()

    with pytest.raises(OutputError, match="disk is full"):
        with InOrder(work, finish, workers=3, waiting=3) as line:
            for k in range(10):
                line.submit(k)
    assert finished[:4] == [0, 1, 2, 3] and 4 not in finished and finished == sorted(finished)
    assert not [t for t in threading.enumerate() if t.name.startswith("fixtrace-write")]


def test_an_interrupt_while_waiting_keeps_the_awaited_item():
    """Interrupted while waiting for the first item's work: that item is still finished once its
    work is done (the CLI's Ctrl-C)."""
    release = threading.Event()
    finished: list[int] = []

    def work(k: int) -> int:
        release.wait(5)
        return k

    def finish(k: int, future: Future[int]) -> None:
        finished.append(future.result())

    def interrupt_once_waiting(fs):  # stands in for Ctrl-C arriving during the wait
        release.set()
        raise KeyboardInterrupt

    import fixtrace.runtime.in_order as in_order

    real_wait = in_order.wait
    in_order.wait = interrupt_once_waiting
    try:
        with pytest.raises(KeyboardInterrupt):
            with InOrder(work, finish, workers=1, waiting=1) as line:
                line.submit(0)
                line.submit(1)
    finally:
        in_order.wait = real_wait
    assert finished[:1] == [0] and finished == sorted(finished)
