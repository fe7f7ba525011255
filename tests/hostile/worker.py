"""The process that runs hostile cases: ``python -m hostile.worker ROOT`` (with tests/ on the path).

It reads one case id per line on stdin and answers one JSON ``Outcome`` per line on the file
descriptor that was its stdout when it started. While a case runs, file descriptors 1 and 2 go
to files (so what C libraries print is caught too), the working directory is the case's folder,
and an audit hook records every file opened that resolves inside ROOT/secrets.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time
import traceback
from dataclasses import asdict
from pathlib import Path

from hostile.case import Case, Context, Outcome
from hostile.corpus import all_cases, context_for


class OpenAudit:
    """An audit hook that records files opened inside one folder, while switched on."""

    def __init__(self, folder: Path) -> None:
        self.folder = os.path.realpath(folder) + os.sep
        self.active = False
        self.hits: list[str] = []

    def __call__(self, event: str, args: tuple) -> None:
        if not self.active or event != "open" or not args or isinstance(args[0], int) or args[0] is None:
            return
        self.active = False  # realpath below must not re-enter
        try:
            real = os.path.realpath(os.fsdecode(args[0]))
            if (real + os.sep).startswith(self.folder):
                self.hits.append(real)
        except (OSError, ValueError, TypeError):
            pass
        finally:
            self.active = True


def run(case: Case, context: Context, audit: OpenAudit) -> Outcome:
    """Run one case in this process, capturing fds 1 and 2."""
    from fixtrace.cli import main

    outcome = Outcome()
    captured = [tempfile.TemporaryFile(), tempfile.TemporaryFile()]
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    os.dup2(captured[0].fileno(), 1)
    os.dup2(captured[1].fileno(), 2)
    cwd = os.getcwd()
    os.chdir(context.run)
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    if case.file_size_limit is not None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (case.file_size_limit, limit[1]))
    audit.hits = []
    audit.active = True
    start = time.perf_counter()
    try:
        if case.call is not None:
            try:
                case.call(context)
            except BaseException as exc:
                outcome.raised = type(exc).__name__
                outcome.raised_mro = [c.__name__ for c in type(exc).__mro__]
                outcome.message = str(exc)
                if not any(c.__name__ == "FixtraceError" for c in type(exc).__mro__):
                    outcome.escaped = traceback.format_exc()
        else:
            try:
                outcome.code = main(case.arguments(context))
            except SystemExit as exc:  # argparse's usage errors
                outcome.code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 2
            except BaseException:
                outcome.escaped = traceback.format_exc()
    finally:
        outcome.seconds = time.perf_counter() - start
        audit.active = False
        resource.setrlimit(resource.RLIMIT_FSIZE, limit)
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)
        os.chdir(cwd)
    outcome.reads = sorted(set(audit.hits))
    for f, attr in zip(captured, ("stdout", "stderr")):
        f.seek(0)
        setattr(outcome, attr, f.read().decode("utf-8", "backslashreplace"))
        f.close()
    return outcome


def main() -> None:
    root = Path(sys.argv[1])
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8")
    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 1)  # between cases, stray output must not reach the protocol channel
    cases = {case.id: case for case in all_cases()}
    audit = OpenAudit(root / "secrets")
    sys.addaudithook(audit)
    import fixtrace

    protocol.write(json.dumps({"ready": os.path.dirname(fixtrace.__file__)}) + "\n")
    protocol.flush()
    for line in sys.stdin:
        case = cases[json.loads(line)["id"]]
        outcome = run(case, context_for(root, case.id), audit)
        protocol.write(json.dumps(asdict(outcome)) + "\n")
        protocol.flush()


if __name__ == "__main__":
    main()
