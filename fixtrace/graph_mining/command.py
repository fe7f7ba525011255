"""``fixtrace explanatory-graph``: mine the explanatory graph of chosen conv layers over a folder
of photos of one category and write it (GraphML, JSON, pictures); optionally locate its nodes on
new photos."""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``explanatory-graph`` verb."""
    from fixtrace.cli import stream_options

    # The defaults are repeated here (the mining module imports numpy): tests check they agree.
    verb = sub.add_parser(
        "explanatory-graph",
        help="mine part patterns of conv filters into a graph (Zhang et al., AAAI 2018) over photos of one category",
        description="Read every photo once, keep the peaks of each filter of --layers, disentangle each filter's "
        "part patterns and link them top-down by stable displacements. Writes OUT/graph.json, graph.graphml, "
        "graph.jpg (layered drawing), strips.jpg and strips/<node>.jpg (where each node fires); "
        "with --locate, located/<photo>.jpg.",
    )
    verb.add_argument("model", help="the .onnx model")
    verb.add_argument("images", nargs="+", help="image files or folders of images of one category")
    verb.add_argument(
        "--layers", required=True, help="conv outputs, comma-separated (`fixtrace layers MODEL`); the deepest is the top"
    )
    verb.add_argument("--out", default="explanatory_graph", help="output folder (default: %(default)s)")
    mining = verb.add_argument_group("mining (names as in the paper and the authors' code)")
    mining.add_argument(
        "--pattern-density",
        type=float,
        metavar="D",
        help="part patterns per map cell of each filter (default: 0.05 on maps of 28 rows or more, else 0.1)",
    )
    mining.add_argument("--iterations", type=int, default=20, help="EM iterations per layer (default: %(default)s)")
    mining.add_argument("--top-n", type=int, default=15, metavar="N", help="parents per node (default: %(default)s)")
    mining.add_argument(
        "--top-m", type=int, default=600, metavar="M", help="nodes kept per layer, the parents' candidates (default: %(default)s)"
    )
    mining.add_argument(
        "--tau", type=float, default=0.1, help="background share in the patterns' competition (default: %(default)s)"
    )
    mining.add_argument("--peaks", type=int, default=8, help="local maxima kept per filter map and photo (default: %(default)s)")
    mining.add_argument(
        "--top-images", type=int, default=20, metavar="K", help="best photos per node: its rank and strip (default: %(default)s)"
    )
    verb.add_argument(
        "--strips", type=int, default=12, metavar="N", help="strips written for the N strongest nodes of each layer"
    )
    verb.add_argument("--locate", action="append", metavar="IMAGE", help="a new photo to locate the nodes on (repeatable)")
    stream_options(verb, batch_size=16)
    verb.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from fixtrace import validate
    from fixtrace.cli import EXIT_ITEM_FAILED, EXIT_OK, _error, _output_folder, skipped, stream_preprocessing, stream_start
    from fixtrace.errors import one_line
    from fixtrace.files import make_folder, safe_name, write_atomic
    from fixtrace.graph_mining.build import check_settings, conv_layers, mine, read_peaks
    from fixtrace.graph_mining.graph import ExplanatoryGraph, model_name
    from fixtrace.graph_mining.graph_io import save
    from fixtrace.graph_mining.localize import locate
    from fixtrace.graph_mining.mining import Settings
    from fixtrace.graph_mining.picture import draw_located
    from fixtrace.progress import Progress

    preset, images = stream_start(args)
    validate.integer("peaks", args.peaks, 1, flag="--peaks")
    validate.integer("strips", args.strips, 0, flag="--strips")
    settings = Settings(
        pattern_density=args.pattern_density,
        iterations=args.iterations,
        top_n=args.top_n,
        top_m=args.top_m,
        tau=args.tau,
        top_images=args.top_images,
    )
    check_settings(settings)
    names = [part.strip() for part in args.layers.split(",") if part.strip()]
    convs = conv_layers(args.model, names, preset=preset, output=args.output, threads=args.threads)
    out = _output_folder(args.out)
    stream_preprocessing(args, convs.reader.preset, convs.reader.preset_source)
    failed: list[object] = []

    def failed_photo(source: object, why: str) -> None:
        failed.append(source)
        skipped(source, why)

    progress = Progress(len(images), enabled=not args.quiet, interval=2.0)
    found, sources, geometries = read_peaks(convs, images, args.peaks, args.batch_size, progress.step, failed_photo)
    if not sources:
        _error("no photo could be read")
        return EXIT_ITEM_FAILED
    layer_note = (lambda name: print(f"mining {one_line(name)}", file=sys.stderr)) if not args.quiet else None
    nodes, edges = mine(convs, found, settings, layer_note)
    photos = [str(s) for s in sources]
    graph = ExplanatoryGraph(
        model_name(args.model),
        convs.reader.preset.to_dict(),
        nodes,
        convs.fields,
        edges,
        args.peaks,
        settings,
        photos,
        geometries,
        sources,
    )
    written = save(graph, out, strips=args.strips)
    if args.locate:
        place = make_folder(out / "located")
        located = locate(graph, args.locate, preset=preset, threads=args.threads)
        for k, found_on in enumerate(located):
            picture = draw_located(graph, found_on)
            # numbered: two photos of one name from different folders keep a picture each
            path = place / f"{k:03d}_{safe_name(Path(str(found_on.source)).stem)}.jpg"
            write_atomic(path, functools.partial(picture.save, format="JPEG", quality=88))
            written.append(path)
        missing = len(args.locate) - len(located)
        if missing > 0:
            _error(f"{missing} photo(s) given to --locate could not be read")
            failed.append("--locate")
    if not args.quiet:
        counts = ", ".join(f"{len(n)} nodes" for n in nodes)
        print(f"{len(sources)} of {len(images)} photos mined: {counts} (lowest layer first), {len(edges)} edges")
        print(f"written: {len(written)} files in {one_line(str(out))}")
    return EXIT_ITEM_FAILED if failed else EXIT_OK
