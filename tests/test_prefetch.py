"""prefetch: loads on reader threads, handed over in order, at most a fixed number ahead; errors
of a load or of the items themselves in their place; no reader outlives the iterator."""

from __future__ import annotations

import threading
import time

import pytest

from fixtrace.errors import FixtraceError
from fixtrace.runtime.prefetch import prefetch


def test_prefetch_keeps_order_and_reads_at_most_ahead():
    started: list[int] = []

    def load(k: int) -> int:
        started.append(k)
        if k == 3:
            raise FixtraceError("three")
        time.sleep(0.01 * (k % 3))
        return k * 10

    stream = prefetch(range(20), load, workers=3, ahead=4)
    first = next(stream)
    assert (first.item, first.value) == (0, 0)
    assert len(started) <= 5  # four waiting, the one handed over
    rest = list(stream)
    assert [r.item for r in rest] == list(range(1, 20))
    assert str(rest[2].error) == "three" and rest[2].value is None
    assert [r.value for r in prefetch(range(3), load, workers=0, ahead=1)] == [0, 10, 20]


def test_an_error_of_the_items_comes_after_the_items_before_it():
    """A source that fails at its 10th item (a database cursor, a broken generator) hands over
    the 9 before it, read ahead or not, then its error."""

    def source():
        yield from range(9)
        raise RuntimeError("the source broke")

    for workers in (0, 2):
        got: list[int] = []
        with pytest.raises(RuntimeError, match="the source broke"):
            for entry in prefetch(source(), lambda k: k, workers=workers, ahead=5):
                got.append(entry.value)
        assert got == list(range(9))


def test_closing_waits_for_the_loads_under_way():
    """Closed early, the iterator returns once the loads under way are done and drops the rest:
    no reader thread is left running."""
    finished: list[int] = []
    release = threading.Event()

    def load(k: int) -> int:
        if k > 0:
            release.wait(5)
            time.sleep(0.05)
        finished.append(k)
        return k

    stream = prefetch(range(100), load, workers=2, ahead=4)
    assert next(stream).value == 0
    release.set()
    stream.close()
    assert sorted(finished) == list(range(len(finished))) and len(finished) <= 3  # 0, then the two running
    assert not [t for t in threading.enumerate() if t.name.startswith("fixtrace-read")]
