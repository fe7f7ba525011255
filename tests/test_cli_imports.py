"""The command line's argument parsing and ``import fixtrace`` stay light: no numba, scipy, onnx...

Each check runs in a fresh interpreter, since this test process has imported everything already.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("numba", "scipy", "onnxruntime", "onnx", "PIL", "sklearn", "jinja2", "fixtrace.api", "fixtrace.methods")


def _heavy_after(code: str) -> list[str]:
    """The HEAVY modules in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.parametrize(
    "argv",
    [
        ["explain", "m.onnx", "a.jpg", "--method", "gradcam,occlusion:patch=32", "--device", "cpu", "--preset", "raw"],
        ["evaluate", "m.onnx", "data", "--methods", "fixations,gradcam:ge"],
        ["audit", "m.onnx", "photos", "--out", "audit", "--toolbox"],
        ["tsne", "m.onnx", "photos"],
        ["compile", "m.onnx", "--method", "cam"],
        ["layers", "m.onnx", "--crop", "none"],
    ],
)
def test_parsing_imports_no_heavy_module(argv: list[str]) -> None:
    code = f"import fixtrace.cli\nargs = fixtrace.cli._parser().parse_args({argv!r})\nassert args.run"
    assert _heavy_after(code) == []


def test_import_fixtrace_is_light() -> None:
    assert _heavy_after("import fixtrace") == []


def test_help_and_usage_still_name_the_methods(capsys: pytest.CaptureFixture[str]) -> None:
    """The texts written only for help and usage: the registry's method names, compile's methods."""
    from fixtrace.cli import _parser
    from fixtrace.compile.maps import COMPILED
    from fixtrace.methods import METHODS, method_names

    with pytest.raises(SystemExit):
        _parser().parse_args(["explain", "--help"])
    explain = " ".join(capsys.readouterr().out.split())
    assert f"--method NAME[,NAME...] {', '.join(method_names())}, or all;" in explain
    coarse = ", ".join(n for n in method_names() if METHODS[n].coarse_maps)
    assert f"Gradual Extrapolation ({coarse})" in explain
    with pytest.raises(SystemExit):
        _parser().parse_args(["compile"])  # a missing argument: usage, then the error
    assert f"[--method {'|'.join(COMPILED)}]" in capsys.readouterr().err


def test_public_names_import_as_before() -> None:
    import fixtrace
    from fixtrace import PRESETS, Explainer, FixtraceError, OptionError, explain
    from fixtrace.api import Explainer as ApiExplainer
    from fixtrace.api import explain as api_explain
    from fixtrace.errors import FixtraceError as ErrorsFixtraceError

    assert (Explainer, explain, FixtraceError) == (ApiExplainer, api_explain, ErrorsFixtraceError)
    assert issubclass(OptionError, FixtraceError) and "imagenet" in PRESETS
    assert set(fixtrace.__all__) <= set(dir(fixtrace))
    assert all(getattr(fixtrace, name) is not None for name in fixtrace.__all__)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        fixtrace.nothing  # noqa: B018
