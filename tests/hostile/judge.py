"""The contract every case is held to, whatever its own expectation."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

from hostile.case import INTERNAL, Case, Context, Expect, Outcome

#: Text that betrays an internal message leaking out instead of fixtrace's own line.
LEAKS = (
    "Traceback",
    "[E:onnxruntime",
    "onnxruntime_src",
    "Warning:",
    "warnings.warn",
    "site-packages",
    "numba.core",
    "NumbaWarning",
    "fixtrace: error: internal error",
    "\x1b[",
)
ERROR_LINE = re.compile(r"^fixtrace( [a-z-]+)?: error: ")
#: stderr lines other than errors that fixtrace may print: its notes and warnings, the progress
#: line, the preprocessing used, and argparse's usage block.
OTHER_LINE = re.compile(r"^(fixtrace: (note|warning): |\[[#-]+\] |preprocessing: |usage: fixtrace|\s)")


def snapshot(root: Path, context: Context) -> dict[str, tuple]:
    """Every path under ``root`` with its kind, size and mtime, except what ``--out`` holds."""
    listing: dict[str, tuple] = {}
    skip = os.path.realpath(context.out)
    for folder, dirs, files in os.walk(root):
        if os.path.realpath(folder) == skip:
            dirs[:] = []
            continue
        for name in dirs + files:
            path = os.path.join(folder, name)
            if path in (str(root / "worker.log"), str(context.out)):
                continue
            try:
                st = os.lstat(path)
            except OSError:
                continue
            # A folder's own mtime changes whenever an entry is added; its entries are listed anyway.
            changes = (0, 0) if stat.S_ISDIR(st.st_mode) else (st.st_size, st.st_mtime_ns)
            listing[os.path.relpath(path, root)] = (stat.S_IFMT(st.st_mode), *changes)
    return listing


def judge(case: Case, outcome: Outcome, context: Context, before: dict, after: dict) -> list[str]:
    """What is wrong with an outcome (empty: nothing)."""
    if outcome.hung:
        return [f"hung: still running after {case.timeout:.0f} s"]
    if outcome.crashed:
        return ["the process died while running it"]
    problems = []
    if outcome.escaped:
        problems.append(f"an exception escaped: {outcome.escaped.strip().splitlines()[-1]}")
    text = outcome.stdout + outcome.stderr
    problems += [f"{marker!r} in the output" for marker in LEAKS if marker in text]
    if outcome.reads:
        problems.append(f"read a file outside the model's or dataset's folder: {outcome.reads}")
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    if changed:
        problems.append(f"wrote outside --out: {changed[:5]}")
    problems += _json_problems(context.out)
    if case.kind == "cli":
        problems += _cli_problems(case.expect, outcome, context)
    else:
        problems += _api_problems(case.expect, outcome)
    return problems


def _cli_problems(expect: Expect, outcome: Outcome, context: Context) -> list[str]:
    problems = []
    lines = [line for line in outcome.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if ERROR_LINE.match(line)]
    if outcome.code == INTERNAL or outcome.code not in expect.codes:
        problems.append(f"exit code {outcome.code}, expected {' or '.join(map(str, expect.codes))}: {_tail(outcome.stderr)}")
    if "usage: fixtrace" not in outcome.stderr:
        strays = [line for line in lines if not ERROR_LINE.match(line) and not OTHER_LINE.match(line)]
        if strays:
            problems.append(f"stderr line that is not fixtrace's: {strays[0][:200]!r}")
    wanted = expect.error_lines if expect.error_lines is not None else (0 if outcome.code == 0 else 1)
    if len(errors) != wanted:
        problems.append(f"{len(errors)} error lines, expected {wanted}: {_tail(outcome.stderr)}")
    for fragment in expect.error:
        if not any(fragment in line for line in errors):
            problems.append(f"no error line holds {fragment!r}: {_tail(outcome.stderr)}")
    problems += [f"--out lacks {p}" for p in expect.files if not (context.out / p).exists()]
    problems += [f"--out holds {p}" for p in expect.absent if (context.out / p).exists()]
    problems += [f"stdout lacks {f!r}" for f in expect.stdout if f not in outcome.stdout]
    problems += [f"stderr lacks {f!r}" for f in expect.stderr if f not in outcome.stderr]
    return problems


def _api_problems(expect: Expect, outcome: Outcome) -> list[str]:
    if expect.raises is None:
        return [f"raised {outcome.raised}: {outcome.message[:300]}"] if outcome.raised else []
    if not outcome.raised:
        return [f"returned instead of raising {expect.raises}"]
    problems = []
    if expect.raises not in outcome.raised_mro or "FixtraceError" not in outcome.raised_mro:
        problems.append(f"raised {outcome.raised} ({outcome.message[:200]}), expected fixtrace.{expect.raises}")
    if "\n" in outcome.message.strip():
        problems.append(f"the message is not one line: {outcome.message[:300]!r}")
    problems += [f"the message lacks {f!r}: {outcome.message[:300]!r}" for f in expect.error if f not in outcome.message]
    return problems


def _json_problems(out: Path) -> list[str]:
    """Every .json file under ``out`` must be standard JSON (no NaN or Infinity, no lone surrogates)."""
    problems = []
    if not out.is_dir():
        return problems

    def refuse(constant: str) -> None:
        raise ValueError(f"non-standard JSON constant {constant}")

    for path in out.rglob("*.json"):
        if not path.is_file() or path.is_symlink():
            continue
        try:
            text = path.read_bytes().decode("utf-8")
            _strict_strings(json.loads(text, parse_constant=refuse))
        except ValueError as exc:
            problems.append(f"{path.relative_to(out)} is not valid JSON: {exc}")
    return problems


def _strict_strings(value: object) -> None:
    """Raise ValueError on a string holding a lone surrogate (valid escapes, but not Unicode text)."""
    if isinstance(value, str):
        value.encode("utf-8")
    elif isinstance(value, dict):
        for key, item in value.items():
            _strict_strings(key)
            _strict_strings(item)
    elif isinstance(value, list):
        for item in value:
            _strict_strings(item)


def _tail(text: str) -> str:
    return " | ".join(text.strip().splitlines()[-3:])[:600]
