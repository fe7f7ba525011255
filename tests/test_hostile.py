"""The hostile-input corpus (tests/hostile/) through the CLI and the API.

The default run takes the fast subset (``Case.fast``); ``pytest -m corpus`` runs all of it (CI's
extra step). Each case is one test, named by its id; a failure lists everything wrong with the
outcome (exit code, error line, leaked internals, files read or written where they must not be,
invalid JSON).
"""

from __future__ import annotations

import pytest

from hostile.corpus import all_cases, build
from hostile.runner import Worker, run_case

CASES = all_cases()


@pytest.fixture(scope="session")
def worker(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    build(root)
    process = Worker(root)
    process.start()
    yield process
    process.stop()


def _params():
    for case in CASES:
        marks = [] if case.fast else [pytest.mark.corpus]
        yield pytest.param(case, id=case.id, marks=marks)


@pytest.mark.parametrize("case", list(_params()))
def test_case(worker, case):
    outcome, problems = run_case(worker, case)
    assert not problems, f"{case.id} ({case.kind}, {outcome.seconds:.1f} s): " + "; ".join(problems)
