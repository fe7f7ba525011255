"""Run the corpus and print the pass count per group: ``python -m hostile`` from tests/.

Options:
    --fixtrace DIR   import fixtrace from this checkout instead (e.g. an older commit's worktree)
    --fast           only the default suite's subset
    --group NAME     only this group (repeatable)
    --root DIR       build the corpus here (default: a temporary folder, removed afterwards)
    --json FILE      also write every case's id, group and problems
    -v               print every failing case's first problem
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from hostile.corpus import GROUPS, all_cases, build
from hostile.runner import Worker, run_case


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m hostile")
    parser.add_argument("--fixtrace", help="a fixtrace checkout to import instead of the installed one")
    parser.add_argument("--fast", action="store_true")
    parser.add_argument("--group", action="append")
    parser.add_argument("--root")
    parser.add_argument("--json")
    parser.add_argument("-v", action="store_true")
    args = parser.parse_args()
    root = Path(args.root or tempfile.mkdtemp(prefix="hostile-"))
    if root.exists() and args.root:
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    build(root)
    cases = [c for c in all_cases() if (not args.fast or c.fast) and (not args.group or c.group in args.group)]
    worker = Worker(root, [args.fixtrace] if args.fixtrace else [])
    worker.start()
    print(f"fixtrace from {worker.fixtrace_dir}; {len(cases)} cases; corpus in {root}", file=sys.stderr)
    results: dict[str, list[tuple[str, list[str]]]] = defaultdict(list)
    try:
        for k, case in enumerate(cases, start=1):
            _, problems = run_case(worker, case)
            results[case.group].append((case.id, problems))
            if problems and args.v:
                print(f"FAIL {case.id}: {problems[0][:300]}", file=sys.stderr)
            if k % 50 == 0:
                print(f"  {k}/{len(cases)} ({time.perf_counter() - start:.0f} s)", file=sys.stderr)
    finally:
        worker.stop()
    print("| group | cases | pass |\n|---|---|---|")
    total = passed = 0
    for group in GROUPS:
        if group in results:
            n, ok = len(results[group]), sum(not p for _, p in results[group])
            total, passed = total + n, passed + ok
            print(f"| {group} | {n} | {ok} |")
    print(f"| all | {total} | {passed} |")
    print(f"{time.perf_counter() - start:.0f} s", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps({g: dict(r) for g, r in results.items()}, indent=1))
    if not args.root:
        shutil.rmtree(root, ignore_errors=True)
    return 0 if passed == total else 1


if __name__ == "__main__":
    sys.exit(main())
