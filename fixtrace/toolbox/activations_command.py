"""``fixtrace activations``: each photo's layer as a grid of channel tiles with the raw values, or
over a photo set (``--dead-report``) the channels that stay zero on nearly every photo."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``activations`` verb."""
    from fixtrace.cli import _preprocessing_options
    from fixtrace.render.colormaps import COLORMAPS
    from fixtrace.toolbox.options import ALL_CONV, SCALES, THRESHOLD

    parser = sub.add_parser(
        "activations",
        help="a layer's channels for each photo as a grid of tiles (+ .npy, .json), or --dead-report over a photo set",
        description="Write, for each photo, every channel of each --layer as a tile of a grid picture "
        "(channels by mean activation, highest first, labelled with their index), the values as "
        "float32 (C, H, W) .npy whatever the model's layout, and per-channel statistics as JSON. "
        "With --dead-report, stream the photos instead and report per layer the channels that are zero "
        "(max over the map <= 0) on more than --dead-threshold of them.",
    )
    parser.add_argument("model", help="the .onnx model")
    parser.add_argument("images", nargs="+", help="image files or folders of images")
    parser.add_argument(
        "--layer",
        metavar=f"NAME[,NAME...]|{ALL_CONV}",
        help=f"the feature maps (see `fixtrace layers`); {ALL_CONV}: each Conv's output, after the BatchNormalization "
        f"and ReLU/Clip that directly follow it (required without --dead-report; with it, default: {ALL_CONV})",
    )
    parser.add_argument(
        "--out", default="activations", help="output folder (default: %(default)s); one sub-folder per photo for the grids"
    )
    parser.add_argument("--top", type=int, metavar="N", help="only the N channels of highest mean in the picture (default: all)")
    parser.add_argument(
        "--tile-scale",
        default="shared",
        metavar="|".join(SCALES),
        help="shared: one range (the layer's min to max) for all tiles; tile: each channel its own (default: %(default)s)",
    )
    parser.add_argument("--colormap", default="gray", metavar="|".join(COLORMAPS), help="the tiles' colours (default: gray)")
    parser.add_argument(
        "--dead-report",
        action="store_true",
        help="over all the photos: per layer, the channels zero on more than --dead-threshold of them "
        "(dead_filters.json, .csv, one line per layer)",
    )
    parser.add_argument(
        "--dead-threshold",
        type=float,
        default=THRESHOLD,
        metavar="F",
        help="a channel is dead when zero on more than this share of the photos, in [0, 1) (default: %(default)s)",
    )
    parser.add_argument(
        "--zero-at",
        type=float,
        default=0.0,
        metavar="V",
        help="a channel is zero on a photo when its max over the map is at most V (default: 0: all zero after a ReLU)",
    )
    parser.add_argument("--batch-size", type=int, default=8, metavar="N", help="images per forward pass (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=0, help="threads for onnxruntime (default: 0, all cores)")
    _preprocessing_options(parser)
    parser.add_argument("--quiet", action="store_true", help="print only errors and the dead-filter summary")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``fixtrace activations``; returns the exit code (1 when a photo could not be read).

    Raises:
        FixtraceError: a bad model, layer or option (before any photo runs), or a failed write.
    """
    from fixtrace import validate
    from fixtrace.cli import _collect_images, _output_folder, _preprocessing_line, _preset_choice
    from fixtrace.errors import OptionError
    from fixtrace.model.layer_graph import LayerGraph
    from fixtrace.model.load import load_model
    from fixtrace.render.colormaps import COLORMAPS
    from fixtrace.toolbox.activations import SCALES, feature_map
    from fixtrace.toolbox.layer_choice import ALL_CONV, choose_layers
    from fixtrace.toolbox.stream import LayerReader

    preset = _preset_choice(args)
    validate.integer("batch_size", args.batch_size, 1, flag="--batch-size")
    validate.integer("threads", args.threads, 0, flag="--threads")
    if args.top is not None:
        validate.integer("top", args.top, 1, flag="--top")
    args.tile_scale = validate.choice("scale", args.tile_scale, SCALES, flag="--tile-scale")
    args.colormap = validate.choice("colormap", args.colormap, COLORMAPS, flag="--colormap")
    if args.layer is None and not args.dead_report:
        raise OptionError(
            f"--layer is required: one or more feature maps (comma-separated) or {ALL_CONV}; `fixtrace layers MODEL` lists them"
        )
    model = load_model(args.model)
    layers = choose_layers(LayerGraph.from_model(model), args.layer or ALL_CONV)
    reader = LayerReader(model, layers, preset=preset, threads=args.threads)
    for layer in layers:
        feature_map(reader, layer)
    images = _collect_images(args.images)
    out = _output_folder(args.out)
    if not args.quiet:
        print(_preprocessing_line(args, reader.preset, reader.preset_source), file=sys.stderr)
    return _dead_report(args, reader, images, out) if args.dead_report else _grids(args, reader, images, out)


def _grids(args: argparse.Namespace, reader: Any, images: list[tuple[Path, str]], out: Path) -> int:
    from fixtrace.cli import EXIT_ITEM_FAILED, EXIT_OK, _error
    from fixtrace.errors import FixtraceError, one_line
    from fixtrace.files import UniqueNames
    from fixtrace.progress import Progress
    from fixtrace.toolbox.activations import save_activations, stream_activations

    folders, names = UniqueNames(), UniqueNames()
    stems = {layer: names.take(layer) for layer in reader.layers}
    progress = Progress(len(images), enabled=not args.quiet)
    failed = 0
    for k, source, found in stream_activations(reader, [path for path, _ in images], args.batch_size):
        folder = out / folders.take(images[k][1])
        if isinstance(found, FixtraceError):
            failed += 1
            _error(f"{source}: {found}; skipped")
        else:
            for layer, activations in found.items():
                paths = save_activations(
                    activations, folder, name=stems[layer], top=args.top, scale=args.tile_scale, colormap=args.colormap
                )
                if not args.quiet:
                    top = " ".join(map(str, activations.order[:5]))
                    c, h, w = activations.values.shape
                    print(one_line(f"{source}: {layer} {c}x{h}x{w}, highest mean channels {top} ... -> {paths[0]}"))
        progress.step(one_line(Path(source).name))
    if failed and len(images) > 1:
        print(f"{len(images) - failed} of {len(images)} images done")
    return EXIT_ITEM_FAILED if failed else EXIT_OK


def _dead_report(args: argparse.Namespace, reader: Any, images: list[tuple[Path, str]], out: Path) -> int:
    from fixtrace.cli import EXIT_ITEM_FAILED, EXIT_OK, _error
    from fixtrace.errors import FixtraceError, one_line
    from fixtrace.progress import Progress
    from fixtrace.toolbox.dead import dead_filters

    progress = Progress(len(images), enabled=not args.quiet)

    def counted(k: int, source: Any, error: FixtraceError | None) -> None:
        if error is not None:
            _error(f"{source}: {error}; skipped")
        progress.step(one_line(Path(source).name))

    report = dead_filters(
        reader,
        [path for path, _ in images],
        threshold=args.dead_threshold,
        zero_at=args.zero_at,
        batch_size=args.batch_size,
        on_image=counted,
    )
    if report.images == 0:
        _error(f"none of the {len(images)} images could be read: no report written")
        return EXIT_ITEM_FAILED
    for counts in report.layers:
        print(one_line(report.summary(counts)))
    paths = report.save(out)
    print(f"{report.images} of {len(images)} images read; written: {', '.join(one_line(str(p)) for p in paths)}")
    return EXIT_ITEM_FAILED if report.failed else EXIT_OK
