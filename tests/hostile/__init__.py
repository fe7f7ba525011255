"""The hostile-input corpus: odd and broken inputs run through fixtrace's CLI and Python API.

Every case is built at test time from a seed and the repo's own models and photos (nothing large
is committed), states what must come of it (``case.Expect``), and is run by a long-lived worker
process (``worker.py``) that calls ``fixtrace.cli.main`` or the API in-process, with the process's
own stdout and stderr captured at the file-descriptor level and every file it opens audited.
``judge.py`` then holds each outcome to the contract: odd-but-valid input succeeds; bad input
fails with one line naming the cause and the documented exit code, no traceback, nothing read
outside the model's or the dataset's folder, nothing written outside ``--out``, valid JSON only.

Groups live in ``groups/``, one module each; ``python -m hostile`` (from ``tests/``) runs the
whole corpus and prints the pass count per group.
"""
