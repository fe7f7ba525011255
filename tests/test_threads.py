"""limit_threads: BLAS/OpenMP and numba pools limited inside the block, restored after."""

from __future__ import annotations

import threading

import numba
import numpy as np
import pytest
from threadpoolctl import threadpool_info

from fixtrace.errors import OptionError
from fixtrace.runtime.threads import limit_threads

np.ones((2, 2)) @ np.ones((2, 2))  # BLAS loaded, so threadpoolctl sees it
numba.set_num_threads(numba.get_num_threads())  # numba's threading layer (maybe OpenMP) loaded too

pytestmark = pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs numba with 2+ threads")


def _pools() -> dict[str, int]:
    return {pool["filepath"]: pool["num_threads"] for pool in threadpool_info()}


def _all(pools: dict[str, int], n: int) -> dict[str, int]:
    return dict.fromkeys(pools, n)


@pytest.fixture
def baseline() -> tuple[dict[str, int], int]:
    pools = _pools()
    assert pools, "no BLAS/OpenMP pool found"
    return pools, numba.get_num_threads()


def test_limits_apply_inside_and_restore_after(baseline: tuple[dict[str, int], int]) -> None:
    pools, numba_threads = baseline
    with limit_threads(1):
        assert _pools() == _all(pools, 1)
        assert numba.get_num_threads() == 1
    assert _pools() == pools
    assert numba.get_num_threads() == numba_threads


def test_zero_changes_nothing(baseline: tuple[dict[str, int], int]) -> None:
    pools, numba_threads = baseline
    numba.set_num_threads(1)
    try:
        with limit_threads(0):
            assert _pools() == pools
            assert numba.get_num_threads() == 1
    finally:
        numba.set_num_threads(numba_threads)


def test_numba_capped_at_its_pool(baseline: tuple[dict[str, int], int]) -> None:
    with limit_threads(numba.config.NUMBA_NUM_THREADS + 5):
        assert numba.get_num_threads() == numba.config.NUMBA_NUM_THREADS
    assert numba.get_num_threads() == baseline[1]


def test_nested_blocks_restore_the_outer_limit(baseline: tuple[dict[str, int], int]) -> None:
    pools, numba_threads = baseline
    with limit_threads(2):
        with limit_threads(1):
            assert _pools() == _all(pools, 1)
            assert numba.get_num_threads() == 1
        assert _pools() == _all(pools, 2)
        assert numba.get_num_threads() == 2
    assert _pools() == pools
    assert numba.get_num_threads() == numba_threads


def test_exception_inside_still_restores(baseline: tuple[dict[str, int], int]) -> None:
    pools, numba_threads = baseline
    with pytest.raises(KeyError), limit_threads(1):
        raise KeyError("boom")
    assert _pools() == pools
    assert numba.get_num_threads() == numba_threads


def test_numba_limit_is_thread_local(baseline: tuple[dict[str, int], int]) -> None:
    seen: list[int] = []
    with limit_threads(1):
        worker = threading.Thread(target=lambda: seen.append(numba.get_num_threads()))
        worker.start()
        worker.join()
    assert seen == [numba.config.NUMBA_NUM_THREADS]


@pytest.mark.parametrize("bad", [-1, 1.5, True, "2"])
def test_bad_counts_refused(bad: object) -> None:
    with pytest.raises(OptionError), limit_threads(bad):  # type: ignore[arg-type]
        pass
