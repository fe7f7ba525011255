"""``fixtrace filters``: a conv layer's weights as a grid of patches, with the weights as .npy."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``filters`` verb."""
    from fixtrace.cli import _preprocessing_options
    from fixtrace.toolbox.options import FIRST

    parser = sub.add_parser(
        "filters",
        help="a Conv's weights as a grid of patches (the first conv's in colour) + .npy and .json",
        description="Draw a Conv node's filters, each scaled to its own min (black) .. max (white) and enlarged: "
        "the conv reading the 3-channel image as colour patches (input channels reversed when the model is fed "
        "BGR), any other conv as grey patches, the first N filters (rows) by their first N input channels "
        "(columns), a depthwise conv one patch per filter.",
    )
    parser.add_argument("model", help="the .onnx model")
    parser.add_argument(
        "--layer", metavar="NAME", help="a Conv's output tensor or node name (default: the first Conv reading the image)"
    )
    parser.add_argument("--out", default="filters", help="output folder (default: %(default)s)")
    parser.add_argument(
        "--first",
        type=int,
        metavar="N",
        help=f"show the first N filters (grey grids: by the first N input channels; default: all, grey grids {FIRST})",
    )
    _preprocessing_options(parser, "; here only the channel order matters (a BGR-fed model's first filters are reversed)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``fixtrace filters``; returns the exit code.

    Raises:
        FixtraceError: a bad model, layer or option, or a failed write.
    """
    from fixtrace import validate
    from fixtrace.cli import EXIT_OK, _output_folder, _preset_choice
    from fixtrace.errors import one_line
    from fixtrace.toolbox.filters import conv_filters, save_filters

    preset = _preset_choice(args)
    if args.first is not None:
        validate.integer("first", args.first, 1, flag="--first")
    filters = conv_filters(args.model, args.layer, preset=preset)
    paths = save_filters(filters, _output_folder(args.out), first=args.first)
    shape = "x".join(map(str, filters.weights.shape))
    order = {"rgb": ", colour" + (" (fed BGR, shown as RGB)" if filters.bgr else ""), "single": ", one channel each"}
    print(one_line(f"{filters.layer} (Conv {filters.node}, weights {shape}{order.get(filters.kind, '')}) -> {paths[0]}"))
    return EXIT_OK
