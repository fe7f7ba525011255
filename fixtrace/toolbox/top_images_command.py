"""``fixtrace top-images``: the photos of a folder that excite chosen channels of a layer (or a
class) the most, as one picture plus the winners in JSON and CSV."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``top-images`` verb."""
    from fixtrace.cli import stream_options
    from fixtrace.toolbox.options import DEFAULT_K, SCORES

    top = sub.add_parser(
        "top-images",
        help="the photos (and the patches) that excite chosen channels of a layer, or a class, the most",
        description="Read every photo once and keep, for each channel, the K photos whose map reaches the "
        "highest value; each is shown cut to the receptive field of its best cell. With --class, the K photos "
        "with the highest raw score (logit) for the class, whole. Writes OUT/top_images.jpg, winners.json, winners.csv.",
    )
    top.add_argument("model", help="the .onnx model")
    top.add_argument("images", nargs="+", help="image files or folders of images (searched with their sub-folders)")
    top.add_argument("--layer", help="the feature map whose channels rank the photos (`fixtrace layers MODEL` lists them)")
    top.add_argument(
        "--channel", dest="channels", type=int, action="append", metavar="C", help="a channel of --layer (repeatable)"
    )
    top.add_argument(
        "--class",
        dest="classes",
        type=int,
        action="append",
        metavar="N",
        help="rank whole photos by class N's raw score instead (repeatable; no --layer)",
    )
    top.add_argument("-k", type=int, default=DEFAULT_K, metavar="K", help="photos per channel or class (default: %(default)s)")
    top.add_argument(
        "--score",
        default="max",
        metavar="|".join(SCORES),
        help="a photo's score for a channel: the largest value of its map, or the map's mean (default: %(default)s)",
    )
    top.add_argument("--out", default="top_images", help="output folder (default: %(default)s)")
    stream_options(top, batch_size=32)
    top.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from fixtrace.cli import EXIT_ITEM_FAILED, EXIT_OK, _output_folder, skipped, stream_preprocessing, stream_start
    from fixtrace.errors import one_line
    from fixtrace.progress import Progress
    from fixtrace.toolbox.top_images import TopImageFinder

    preset, images = stream_start(args)
    finder = TopImageFinder(
        args.model,
        args.layer,
        args.channels or (),
        args.k,
        classes=args.classes or (),
        score=args.score,
        preset=preset,
        output=args.output,
        threads=args.threads,
    )
    out = _output_folder(args.out)
    stream_preprocessing(args, finder.reader.preset, finder.reader.preset_source)
    # A stream of thousands: off a terminal, one progress line every 2 s (as the audit's).
    progress = Progress(len(images), enabled=not args.quiet, interval=2.0)
    result = finder.run(images, args.batch_size, on_step=progress.step, on_failure=skipped)
    written = result.save(out)
    if not args.quiet:
        for unit, found in result.winners.items():
            best = ", ".join(f"{one_line(w.name)} {w.score:.4g}" for w in found[:3])
            print(f"{one_line(result.names[unit])}: {best}{', ...' if len(found) > 3 else ''}")
        print(f"{result.seen} of {len(images)} photos ranked; written: {', '.join(one_line(str(p)) for p in written)}")
    return EXIT_ITEM_FAILED if result.failed else EXIT_OK
