"""One hostile case: what is run, and what must come of it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Exit codes of the ``fixtrace`` command (README): all done, some images failed, bad model or
#: arguments (or a full disk), internal error.
OK, ITEM_FAILED, BAD_INPUT, INTERNAL = 0, 1, 2, 3


@dataclass(frozen=True)
class Expect:
    """What must come of a case.

    Attributes:
        codes: the exit codes the CLI may end with.
        error: fragments the error line (CLI) or the exception message (API) must hold.
        raises: API cases: the fixtrace error class expected (None: the call must succeed).
        error_lines: how many ``fixtrace: error:`` lines; None means one when the code is
            non-zero and none otherwise.
        files: paths under ``--out`` that must exist afterwards.
        absent: paths under ``--out`` that must not exist afterwards.
        stdout: fragments the standard output must hold.
        stderr: fragments the standard error must hold (notes and warnings).
    """

    codes: tuple[int, ...] = (OK,)
    error: tuple[str, ...] = ()
    raises: str | None = None
    error_lines: int | None = None
    files: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()
    stdout: tuple[str, ...] = ()
    stderr: tuple[str, ...] = ()


def ok(*files: str, stdout: tuple[str, ...] = (), stderr: tuple[str, ...] = ()) -> Expect:
    """Success (exit 0), with these files under ``--out``."""
    return Expect((OK,), files=files, stdout=stdout, stderr=stderr)


def fails(code: int, *error: str, lines: int | None = None, files: tuple[str, ...] = (), absent: tuple[str, ...] = ()) -> Expect:
    """Failure with ``code`` and one error line holding every fragment of ``error``."""
    return Expect((code,), error=error, error_lines=lines, files=files, absent=absent)


def raises(error_class: str, *error: str) -> Expect:
    """An API call that must raise ``fixtrace.<error_class>`` with these fragments in its message."""
    return Expect((), error=error, raises=error_class)


def returns() -> Expect:
    """An API call that must succeed."""
    return Expect((), raises=None)


@dataclass(frozen=True)
class Context:
    """Where an API case runs.

    Attributes:
        inputs: the corpus's input folder.
        run: this case's own folder (the working directory while it runs).
        out: the output folder it may write to.
    """

    inputs: Path
    run: Path
    out: Path


@dataclass(frozen=True)
class Case:
    """A hostile input and its expectation.

    Attributes:
        id: ``group/name``, unique.
        expect: what must come of it.
        argv: CLI cases: the arguments after ``fixtrace``; ``{in}``, ``{out}`` and ``{run}`` stand
            for the inputs folder, the output folder and the case's folder.
        call: API cases: a function of the Context.
        prepare: run before the case, given the Context (e.g. to plant a file in ``--out``).
        verify: run after the case, given the Context; returns what is wrong (empty: nothing).
        fast: part of the subset the default test run takes.
        timeout: seconds before the case counts as a hang.
        file_size_limit: RLIMIT_FSIZE in bytes while the case runs (writes beyond it fail with EFBIG).
    """

    id: str
    expect: Expect
    argv: tuple[str, ...] = ()
    call: Callable[[Context], Any] | None = None
    prepare: Callable[[Context], None] | None = None
    verify: Callable[[Context], list[str]] | None = None
    fast: bool = False
    timeout: float = 120.0
    file_size_limit: int | None = None

    @property
    def group(self) -> str:
        return self.id.split("/", 1)[0]

    @property
    def kind(self) -> str:
        return "api" if self.call is not None else "cli"

    def arguments(self, context: Context) -> list[str]:
        """The CLI arguments with the placeholders filled in."""
        values = {"{in}": str(context.inputs), "{out}": str(context.out), "{run}": str(context.run)}
        filled = []
        for arg in self.argv:
            for key, value in values.items():
                arg = arg.replace(key, value)
            filled.append(arg)
        return filled


@dataclass
class Outcome:
    """What happened when a case ran.

    Attributes:
        code: the CLI's exit code (None for API cases, or when it did not end).
        stdout, stderr: everything written to file descriptors 1 and 2.
        raised: API cases: the exception's class name ("" when none).
        raised_mro: the names of its classes, most derived first.
        message: the exception's message.
        escaped: a traceback when an exception escaped ``fixtrace.cli.main``.
        reads: files opened that resolve inside the corpus's secrets folder.
        seconds: wall time.
        hung: the case ran past its timeout and its worker was killed.
        crashed: the worker died (signal, abort) while running it.
    """

    code: int | None = None
    stdout: str = ""
    stderr: str = ""
    raised: str = ""
    raised_mro: list[str] = field(default_factory=list)
    message: str = ""
    escaped: str = ""
    reads: list[str] = field(default_factory=list)
    seconds: float = 0.0
    hung: bool = False
    crashed: bool = False
