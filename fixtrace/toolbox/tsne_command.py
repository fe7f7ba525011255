"""``fixtrace tsne``: the photos of a folder laid out by their CNN codes (t-SNE), as a thumbnail
grid and a class scatter, with the codes, positions and predictions as files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DESCRIPTION = (
    "Read one code per image from the model (default: the input of its final dense layer, after its "
    "nonlinearity; a GAP model's pooled vector), embed the codes in 2-D with t-SNE (PCA to 50 dimensions "
    "first for longer codes) and write: codes.npy (float32 images x values), coords.npy (float32 images x 2), "
    "tsne.csv (source, x, y, class, name, probability; the rows of both arrays), grid.jpg (each image's "
    "thumbnail at its place, snapped to a grid by a minimum-cost assignment so none overlap) and "
    "scatter.png (the points coloured by predicted class). Needs scikit-learn: pip install 'fixtrace[tsne]'."
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``tsne`` verb: its flags, help and run function."""
    from fixtrace.cli import stream_options
    from fixtrace.toolbox.options import DEFAULT_MAX_SIDE, DEFAULT_PERPLEXITY, DEFAULT_THUMB, MAX_SIDE

    ts = sub.add_parser("tsne", help="t-SNE of CNN codes: images laid out by how the network sees them", description=DESCRIPTION)
    ts.add_argument("model", help="the .onnx model")
    ts.add_argument("images", nargs="+", help="folders of images (sub-folders searched) or image files; at least 5 readable")
    ts.add_argument("--out", default="tsne", help="output folder (default: tsne)")
    ts.add_argument(
        "--layer",
        help="the tensor whose values are the codes (default: the input of the final dense layer; `fixtrace layers MODEL` "
        "lists the tensors)",
    )
    ts.add_argument(
        "--pool",
        action="store_true",
        help="average a rank-4 --layer over its rows and columns (one value per channel); default: flatten it (every value)",
    )
    ts.add_argument(
        "--perplexity",
        type=float,
        default=DEFAULT_PERPLEXITY,
        help="t-SNE's perplexity, about the neighbours each image keeps close; lowered to (images - 1) / 3 when higher "
        "(default: %(default)g)",
    )
    ts.add_argument("--seed", type=int, default=0, help="random seed of PCA and t-SNE: same seed, same layout (default: 0)")
    ts.add_argument(
        "--grid",
        type=int,
        metavar="N",
        help=f"N x N cells in grid.jpg, 1..{MAX_SIDE} (default: the smallest square with a cell per image, at most "
        f"{DEFAULT_MAX_SIDE}); with fewer cells than images each cell shows the image the assignment puts there",
    )
    ts.add_argument(
        "--thumb", type=int, default=DEFAULT_THUMB, metavar="PX", help="thumbnail side in grid.jpg (default: %(default)s)"
    )
    ts.add_argument(
        "--labels",
        help="class names file, one per line (default: the model's own names in its metadata, else ImageNet's for 1000 classes)",
    )
    stream_options(ts, batch_size=32)
    ts.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``fixtrace tsne``; returns the exit code (1 when some images were skipped)."""
    from fixtrace import validate
    from fixtrace.cli import EXIT_ITEM_FAILED, EXIT_OK, _output_folder, skipped, stream_preprocessing, stream_start
    from fixtrace.errors import one_line
    from fixtrace.files import write_atomic
    from fixtrace.progress import Progress
    from fixtrace.toolbox.codes import code_width
    from fixtrace.toolbox.tsne import embed, require_sklearn
    from fixtrace.toolbox.tsne_pictures import MAX_SIDE, default_side, grid_picture, scatter_picture

    require_sklearn()
    preset, images = stream_start(args)
    validate.integer("thumb", args.thumb, 8, 512, flag="--thumb")
    if args.grid is not None:
        validate.integer("grid", args.grid, 1, MAX_SIDE, flag="--grid")
    out = _output_folder(args.out)
    progress = Progress(len(images), enabled=not args.quiet)
    reduction = "pool" if args.pool else "flatten"

    def started(reader, layer) -> None:
        stream_preprocessing(args, reader.preset, reader.preset_source)
        if not args.quiet:
            print(
                one_line(f"codes: {layer.name!r} ({code_width(reader, layer.name, reduction)} values per image): {layer.reason}")
            )

    result = embed(
        args.model,
        images,
        args.layer,
        reduction=reduction,
        perplexity=args.perplexity,
        seed=args.seed,
        preset=preset,
        output=args.output,
        labels=args.labels,
        batch_size=args.batch_size,
        threads=args.threads,
        on_start=started,
        on_step=lambda source: progress.step(Path(source).name),
    )
    for source, exc in result.codes.failed.values():
        skipped(source, exc)
    for note in [] if args.quiet else result.notes:
        print(f"fixtrace: note: {one_line(note)}", file=sys.stderr)
    written = result.save(out)
    side = default_side(len(result)) if args.grid is None else args.grid
    grid, shown, _ = grid_picture(result, side, args.thumb)
    write_atomic(out / "grid.jpg", lambda p: grid.save(p, format="JPEG", quality=90))
    write_atomic(out / "scatter.png", lambda p: scatter_picture(result).save(p, format="PNG"))
    written += [out / "grid.jpg", out / "scatter.png"]
    if not args.quiet:
        pca = f", PCA to {result.pca} dimensions" if result.pca else ""
        print(
            f"t-SNE of {len(result)} of {len(images)} images{pca}, perplexity {result.perplexity:.3g}, seed {result.seed}; "
            f"grid.jpg shows {len(shown)} on {side}x{side} cells"
        )
        print(f"written: {', '.join(one_line(str(p)) for p in written)}")
    return EXIT_ITEM_FAILED if result.codes.failed else EXIT_OK
