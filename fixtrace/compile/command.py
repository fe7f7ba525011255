"""``fixtrace compile``: write a method's map into the model as extra outputs."""

from __future__ import annotations

import argparse
from pathlib import Path

DESCRIPTION = (
    "Write a model whose outputs are its own plus an explanation: <method>_map (gradcam++: gradcampp_map, "
    "guided-backprop: guided_backprop_map), float32 (N, rows, cols) maps on the "
    "input grid (saliency, guided-backprop, deconvnet) or on the layer's grid (gradcam, cam, gradcam++, layercam, "
    "xgradcam), and <method>_class, the int64 (N,) classes explained: the top class, or the class fed to an extra "
    "int64 (N,) input 'class' with --class-input. The backward is written as ONNX nodes (ConvTranspose for convs and "
    "pools, Where masks for ReLUs, ...), so the model explains itself wherever it runs (onnxruntime on CPU or CUDA, "
    "other runtimes); its maps equal fixtrace's own within float32 rounding. An op on the backward path without an "
    "ONNX form is named, and nothing is written."
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``compile`` verb: its flags, help and run function."""
    from fixtrace.cli import _preprocessing_options

    co = sub.add_parser("compile", help="write a method's map into the model as extra ONNX outputs", description=DESCRIPTION)
    co.add_argument("model", help="the .onnx model")
    method = co.add_argument("--method", default="gradcam", help="the method written (default: gradcam)")
    co.later(method, "metavar", _compiled_names)  # the compiled maps import the methods: only for help or usage
    co.add_argument("-o", "--out", metavar="FILE", help="the model written (default: MODEL_xai.onnx in the current folder)")
    co.add_argument("--layer", help="the tensor the Grad-CAM family reads (default: the last spatial map; see `fixtrace layers`)")
    co.add_argument(
        "--class-input",
        action="store_true",
        help="add an int64 (N,) input 'class' choosing the class explained (default: the top class; a class out of "
        "range gives an all-zero map)",
    )
    co.add_argument("--output", metavar="NAME", help="the class-score output explained (default: the first)")
    _preprocessing_options(co, "; here they only set the input size of a model whose size is symbolic")
    co.add_argument("--quiet", action="store_true", help="print only errors")
    co.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    co.set_defaults(run=run)


def _compiled_names() -> str:
    """``gradcam|cam|...``: the methods ``compile`` writes."""
    from fixtrace.compile.maps import COMPILED

    return "|".join(COMPILED)


def run(args: argparse.Namespace) -> int:
    """Run ``fixtrace compile``; returns the exit code."""
    import onnx

    from fixtrace.cli import EXIT_OK, _preset_choice
    from fixtrace.compile.compiler import compile_explanation
    from fixtrace.errors import OptionError, one_line
    from fixtrace.files import write_atomic

    preset = _preset_choice(args)
    out = Path(args.out) if args.out else Path(f"{Path(args.model).stem}_xai.onnx")
    if out.exists() and Path(args.model).exists() and out.resolve() == Path(args.model).resolve():
        raise OptionError(f"-o {out} is the model itself; write the compiled model to another file")
    compiled = compile_explanation(
        args.model, args.method, layer=args.layer, class_input=args.class_input, output=args.output, preset=preset
    )
    write_atomic(out, lambda path: onnx.save_model(compiled.model, path))
    if not args.quiet:
        grid = "x".join(str(d) for d in compiled.map_grid)
        where = f"on layer {compiled.layer!r}" if compiled.layer else "on the input grid"
        chosen = f"the class fed to input {compiled.class_input!r}" if compiled.class_input else "the top class"
        print(
            one_line(
                f"wrote {out}: outputs {compiled.map_output!r} ({args.method} maps, N x {grid}, {where}) and "
                f"{compiled.class_output!r} (the classes explained: {chosen}); {compiled.added} nodes added"
            )
        )
    return EXIT_OK
