"""The test side: a worker process kept warm across cases, restarted after a hang or a crash."""

from __future__ import annotations

import json
import os
import selectors
import shutil
import subprocess
import sys
import time
from pathlib import Path

from hostile.case import Case, Outcome
from hostile.corpus import context_for
from hostile.judge import judge, snapshot

TESTS = Path(__file__).resolve().parents[1]


class Worker:
    """A ``hostile.worker`` process.

    Args:
        root: the corpus folder (built).
        python_path: folders put before tests/ on the worker's path (e.g. another fixtrace checkout).
    """

    def __init__(self, root: Path, python_path: list[str] | None = None) -> None:
        self.root = root
        self.python_path = python_path or []
        self.proc: subprocess.Popen | None = None
        self.fixtrace_dir = ""
        self._buffer = b""

    def start(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([*self.python_path, str(TESTS), env.get("PYTHONPATH", "")])
        log = open(self.root / "worker.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hostile.worker", str(self.root)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            env=env,
            cwd=self.root,
        )
        log.close()
        self._buffer = b""
        ready = self._read_line(600)
        if ready is None:
            raise RuntimeError(f"the hostile worker did not start; see {self.root / 'worker.log'}")
        self.fixtrace_dir = json.loads(ready)["ready"]

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def run(self, case: Case) -> Outcome:
        """Run one case; a hang past its timeout or a dead worker is an outcome too."""
        if self.proc is None:
            self.start()
        assert self.proc is not None and self.proc.stdin is not None
        start = time.perf_counter()
        try:
            self.proc.stdin.write((json.dumps({"id": case.id}) + "\n").encode())
            self.proc.stdin.flush()
            line = self._read_line(case.timeout)
        except BrokenPipeError:
            line = None
        if line is None:
            hung = self.proc.poll() is None
            self.stop()
            return Outcome(hung=hung, crashed=not hung, seconds=time.perf_counter() - start)
        return Outcome(**json.loads(line))

    def _read_line(self, timeout: float) -> str | None:
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(left):
                    return None
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    return None
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode("utf-8")


def run_case(worker: Worker, case: Case, keep: bool = False) -> tuple[Outcome, list[str]]:
    """Prepare the case's folder, run the case, judge it.

    Args:
        worker: the worker process.
        case: the case.
        keep: keep the case's folder even when it passed (failed cases always keep theirs).

    Returns:
        The outcome and what is wrong with it (empty: the case passed).
    """
    context = context_for(worker.root, case.id)
    if context.run.exists():
        shutil.rmtree(context.run)
    context.run.mkdir(parents=True)
    if case.prepare is not None:
        case.prepare(context)
    before = snapshot(worker.root, context)
    outcome = worker.run(case)
    problems = judge(case, outcome, context, before, snapshot(worker.root, context))
    if case.verify is not None and not outcome.hung and not outcome.crashed:
        try:
            problems += case.verify(context)
        except (OSError, ValueError, KeyError, TypeError) as exc:  # the outputs it reads are missing or malformed
            problems.append(f"its outputs could not be checked: {type(exc).__name__}: {exc}")
    if not problems and not keep:
        shutil.rmtree(context.run, ignore_errors=True)
    return outcome, problems
