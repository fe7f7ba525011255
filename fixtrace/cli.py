"""The ``fixtrace`` command line. Every known failure ends as one line and a non-zero exit."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import traceback
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from fixtrace.errors import EmptyMapWarning, FixtraceError, OptionError, OutputError, one_line

if TYPE_CHECKING:  # the CLI imports the heavy modules only when a verb needs them
    from fixtrace.images.preset_choice import PresetChoice
    from fixtrace.images.presets import Preset

EXIT_OK, EXIT_ITEM_FAILED, EXIT_ERROR, EXIT_INTERNAL = 0, 1, 2, 3
IMAGE_SUFFIXES = {
    ".jpg",
    ".jpeg",
    ".jpe",
    ".jfif",
    ".png",
    ".bmp",
    ".dib",
    ".gif",
    ".tif",
    ".tiff",
    ".webp",
    ".ppm",
    ".pgm",
    ".pbm",
    ".pnm",
    ".tga",
    ".ico",
    ".pcx",
    ".jp2",
    ".j2k",
    ".avif",
    ".heic",
    ".heif",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fixtrace`` console script; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except FixtraceError as exc:
        _error(str(exc))
        return EXIT_ERROR
    except MemoryError:
        _error("out of memory (rerun with --debug for the traceback, and please report what you ran)")
        return EXIT_INTERNAL
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except BrokenPipeError:  # the reader of our output went away (`| head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as exc:  # the CLI never shows a raw traceback unless asked to
        if getattr(args, "debug", False):
            traceback.print_exc()
        _error(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)")
        return EXIT_INTERNAL


class Parser(argparse.ArgumentParser):
    """An argument parser whose texts that need heavy imports (the method registry) are written
    only when it prints its help or usage, so that parsing the arguments stays light."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._later: list[tuple[argparse.Action, str, Callable[[], str]]] = []

    def later(self, action: argparse.Action, field: str, text: Callable[[], str]) -> None:
        """Set ``action``'s ``field`` (``help`` or ``metavar``) to ``text()`` before help or usage is printed."""
        self._later.append((action, field, text))

    def format_usage(self) -> str:
        self._write_later()
        return super().format_usage()

    def format_help(self) -> str:
        self._write_later()
        return super().format_help()

    def _write_later(self) -> None:
        for action, field, text in self._later:
            setattr(action, field, text())
        self._later.clear()


def _parser() -> Parser:
    from fixtrace.backends import DEVICES
    from fixtrace.fixations.options import CONV_LOCATIONS, DEFAULT_CONV_LOCATION

    parser = Parser(prog="fixtrace", description="Explain CNN image classifiers through their ONNX graph.")
    sub = parser.add_subparsers(dest="command", required=True)

    ex = sub.add_parser("explain", help="explain photos with CNN Fixations and write overlays, heat maps and JSON")
    ex.add_argument("model", help="the .onnx model")
    ex.add_argument("images", nargs="+", help="image files or folders of images")
    ex.add_argument("--out", default="out", help="output folder (default: out); one sub-folder per image")
    ex.add_argument("--output", metavar="NAME", help="the model output to explain (default: the first; see `fixtrace info`)")
    ex.add_argument(
        "--any-output",
        action="store_true",
        help="explain the output even when it does not look like class scores (each position counts as a class)",
    )
    which = ex.add_mutually_exclusive_group()
    which.add_argument(
        "--class",
        dest="target",
        type=int,
        action="append",
        metavar="N",
        help="class index to explain (repeatable); default: the predicted class",
    )
    which.add_argument("--top-k", type=int, metavar="K", help="explain the K best classes, one map each")
    method = ex.add_argument("--method", default="fixations", metavar="NAME[,NAME...]")
    ex.later(
        method,
        "help",
        lambda: (
            f"{', '.join(_methods())}, or all; several (comma-separated) share one forward and "
            "write one folder per method plus grid.png; options as name:key=value, e.g. occlusion:patch=32, "
            "gradcam:ge (default: fixations; `fixtrace info` describes each)"
        ),
    )
    ex.add_argument("--layer", help="the tensor the layer methods read (default: the last spatial map; see `fixtrace layers`)")
    ge = ex.add_argument("--ge", action="store_true")
    ex.later(ge, "help", lambda: f"sharpen the map with Gradual Extrapolation ({', '.join(_methods(coarse_maps=True))})")
    ex.add_argument(
        "--conv-location",
        choices=CONV_LOCATIONS,
        default=DEFAULT_CONV_LOCATION,
        help="where a conv fixation lands in its window (default: %(default)s)",
    )
    ex.add_argument("--no-outlier-removal", action="store_true", help="keep isolated fixation points")
    ex.add_argument(
        "--crops",
        type=int,
        default=1,
        metavar="N",
        help="multi-crop: 1 (the preset's crop), 2 (and its mirror), 5 (corners and centre) or 10 (and mirrors); "
        "the class is ranked on the crops' mean, the crops that agree with it are explained and merged on the photo",
    )
    _rendering_options(ex, "the method's, chosen on bench/localization.py")
    _picture_options(ex)
    ex.add_argument("--layers", action="store_true", help="also write per-layer fixation counts and points")
    ex.add_argument(
        "--image-format",
        choices=("png", "jpg"),
        default="png",
        help="the pictures' format: png (default) or jpg (overlay.jpg, heatmap.jpg, ...: a sixth of the size, "
        "written about 20x faster, lossy; heatmap.npy is unchanged)",
    )
    ex.add_argument(
        "--labels",
        help="class names file, one per line (default: the model's own names in its metadata, else ImageNet's for 1000 classes)",
    )
    _runtime_options(ex, batch_size=8)
    from fixtrace.compile import BACKWARDS

    ex.add_argument(
        "--backward",
        choices=BACKWARDS,
        default="auto",
        help="where gradient methods walk back: numpy, onnx (onnxruntime runs the rules' ONNX form) or auto "
        "(onnx for walks down to the input where every op has an ONNX form, else numpy; default)",
    )
    _preprocessing_options(ex)
    ex.add_argument("--quiet", action="store_true", help="print only errors")
    ex.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    ex.set_defaults(run=_explain)

    info = sub.add_parser("info", help="print versions, onnxruntime providers, CUDA status and the supported ops")
    info.add_argument("model", nargs="?", help="also describe this model: input, layout, logits, unsupported ops")
    info.add_argument("--device", choices=DEVICES, default="auto", help="device for the model check (default: auto)")
    info.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    info.set_defaults(run=_info)

    from fixtrace.evaluate import dataset as dataset_format
    from fixtrace.evaluate.methods import DEFAULT_METHODS, FLAGS

    ev = sub.add_parser(
        "evaluate",
        help="score explanation methods on a folder of images with boxes (method x metric table)",
        description="Explain every image of DATASET_DIR with each method and print the method x metric "
        "table: top-1 localization error, GT-known localization error, pointing game, "
        "energy in the box, deletion and insertion AUC, time per image.",
        epilog=dataset_format.__doc__.split("\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ev.add_argument("model", help="the .onnx model")
    ev.add_argument("dataset", help="folder of images with a boxes.csv (format below)")
    ev.add_argument(
        "--methods",
        default=",".join(DEFAULT_METHODS),
        help=f"comma-separated methods, each name[:flag...], flags {', '.join(FLAGS)} (default: %(default)s)",
    )
    ev.add_argument("--out", default="evaluation", help="folder for evaluation.md/.csv/.json (default: evaluation)")
    _rendering_options(ev, "each method's; box=F in a spec overrides")
    ev.add_argument("--iou", type=float, default=0.5, help="IoU a box needs to count as found (default: 0.5)")
    ev.add_argument("--tolerance", type=float, default=0.0, help="pointing-game tolerance in pixels (default: 0)")
    ev.add_argument(
        "--perturbation",
        type=int,
        default=50,
        metavar="N",
        help="deletion/insertion curves on the first N images of each method (default: 50; 0: none)",
    )
    ev.add_argument("--steps", type=int, default=32, help="points per deletion/insertion curve (default: 32)")
    ev.add_argument(
        "--explain",
        choices=("predicted", "label"),
        default="predicted",
        help="the class each map explains: the model's top-1 (ILSVRC localization; default) or the "
        "labelled class (pointing game)",
    )
    ev.add_argument("--limit", type=int, metavar="N", help="only the first N images")
    _runtime_options(ev, batch_size=16)
    _preprocessing_options(ev)
    ev.add_argument("--quiet", action="store_true", help="no progress bar")
    ev.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    ev.set_defaults(run=_evaluate)

    from fixtrace.audit.toolbox import DEFAULT_LIMIT as TOOLBOX_LIMIT

    au = sub.add_parser(
        "audit",
        help="explain a whole image set into a resumable audit folder: ledger, pictures, manifest, report",
        description="Explain every image (folders, glob patterns, .txt or .csv lists of paths) with one or several "
        "methods. Each finished image is one line of AUDIT/results.jsonl; rerunning the same command resumes.",
    )
    au.add_argument("model", help="the .onnx model")
    au.add_argument("images", nargs="+", help="image files, folders, glob patterns ('photos/**/*.jpg'), .txt or .csv lists")
    au.add_argument("--out", required=True, metavar="AUDIT", help="the audit folder (resumed when it holds this audit)")
    au.add_argument("--method", default="fixations", metavar="NAME[,NAME...]", help="the methods (default: %(default)s)")
    au.add_argument("--boxes", metavar="CSV", help="ground-truth boxes, boxes.csv format (image,label,x0,y0,x1,y1)")
    au.add_argument("--labels-csv", metavar="CSV", help="true classes: columns image,label (a class index or name)")
    au.add_argument(
        "--workers",
        type=int,
        default=2,
        help="local engine: threads decoding photos ahead; ray engine: Ray actors, one CPU each (default: %(default)s)",
    )
    au.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local: this process (default); ray: Ray Data actors, on a local Ray or the cluster of --ray-address "
        "(needs fixtrace[ray]; images and --out on a filesystem every node shares)",
    )
    au.add_argument(
        "--ray-address",
        metavar="ADDRESS",
        help="with --engine ray: a running Ray cluster (HEAD:6379, from `ray start --head`); else a local one is started",
    )
    au.add_argument("--force", action="store_true", help="start a fresh audit in --out, removing the one there")
    au.add_argument(
        "--toolbox",
        action="store_true",
        help="also add the toolbox's views to the report: the first conv's filters, dead filters, top images of the "
        "last conv map, t-SNE of the codes (t-SNE needs fixtrace[tsne]); each reads the photos once more",
    )
    au.add_argument(
        "--toolbox-images",
        type=int,
        default=TOOLBOX_LIMIT,
        metavar="N",
        help="the toolbox reads the first N photos (default: %(default)s)",
    )
    _rendering_options(au, "each method's")
    _runtime_options(au, batch_size=8)
    _preprocessing_options(au)
    au.add_argument("--quiet", action="store_true", help="print only errors and the summary")
    au.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    au.set_defaults(run=_audit)

    layers = sub.add_parser("layers", help="list the model's feature maps (names for --layer) with op and shape")
    layers.add_argument("model", help="the .onnx model")
    _preprocessing_options(layers, "; here they only set the input size of a model whose size is symbolic")
    layers.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    layers.set_defaults(run=_layers)
    from fixtrace.toolbox import activations_command, filters_command, top_images_command, tsne_command

    activations_command.add_parser(sub)
    filters_command.add_parser(sub)
    top_images_command.add_parser(sub)
    tsne_command.add_parser(sub)
    from fixtrace.compile import command as compile_command

    compile_command.add_parser(sub)
    from fixtrace.graph_mining import command as graph_command

    graph_command.add_parser(sub)
    return parser


def _methods(coarse_maps: bool = False) -> list[str]:
    """The registered methods' names (those with coarse maps only, when asked); imports every method."""
    from fixtrace.methods import METHODS, method_names

    return [name for name in method_names() if METHODS[name].coarse_maps or not coarse_maps]


def _rendering_options(parser: argparse.ArgumentParser, box_default: str) -> None:
    """--sigma and --box-threshold."""
    from fixtrace.render.heatmap import DEFAULT_SIGMA

    parser.add_argument(
        "--sigma",
        type=float,
        default=DEFAULT_SIGMA,
        help="fixations' heat-map blur, fraction of the short side (default: %(default).3g)",
    )
    parser.add_argument("--box-threshold", type=float, help=f"box cut at this fraction of the map's max (default: {box_default})")


def _picture_options(parser: argparse.ArgumentParser) -> None:
    """--colormap, --no-legend, --points, --view and --clip: how the pictures show the map."""
    from fixtrace.render.colormaps import COLORMAPS
    from fixtrace.render.display import VIEWS

    group = parser.add_argument_group("pictures", "how overlay.png and heatmap.png show the map (heatmap.npy is unchanged)")
    group.add_argument("--colormap", default="jet", metavar="|".join(COLORMAPS), help="the overlay's colour map (default: jet)")
    group.add_argument(
        "--no-legend", action="store_true", help="no legend (class, probability, method, colour bar) on the overlay"
    )
    group.add_argument(
        "--points", action="store_true", help="draw the fixation points: inliers white, outliers hollow red (fixations)"
    )
    group.add_argument(
        "--view",
        default="auto",
        metavar="|".join(VIEWS),
        help="signed: the signed gradient, negatives blue, positives red (guided-backprop, deconvnet, "
        "guided-gradcam); default: the method's own view",
    )
    group.add_argument(
        "--clip",
        metavar="P",
        help="top of the colour scale at the P-th percentile of the map inside what the model saw "
        "(100: the max; default: 99 for pixel-gradient maps, 100 otherwise)",
    )


def stream_options(parser: argparse.ArgumentParser, batch_size: int, quiet: str = "print only errors") -> None:
    """The toolbox verbs' last flags: --output, --batch-size, --threads, the preprocessing flags,
    --quiet and --debug."""
    parser.add_argument("--output", metavar="NAME", help="the class-score output (default: the first; see `fixtrace info`)")
    parser.add_argument(
        "--batch-size", type=int, default=batch_size, metavar="N", help="images per forward pass (default: %(default)s)"
    )
    parser.add_argument("--threads", type=int, default=0, help="threads for onnxruntime and BLAS (default: 0, all cores)")
    _preprocessing_options(parser)
    parser.add_argument("--quiet", action="store_true", help=quiet)
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")


def stream_start(args: argparse.Namespace) -> tuple[PresetChoice, list[Path]]:
    """What a verb with ``stream_options`` does first: the preset its flags ask for, ``--batch-size``
    checked, and the image files its arguments name (folders searched).

    Raises:
        OptionError: a bad preprocessing flag or batch size, or no image.
    """
    from fixtrace import validate

    preset = _preset_choice(args)
    validate.integer("batch_size", args.batch_size, 1, flag="--batch-size")
    return preset, [path for path, _ in _collect_images(args.images)]


def stream_preprocessing(args: argparse.Namespace, preset: Preset, source: str) -> None:
    """Print the preprocessing line on stderr, unless ``--quiet``."""
    if not args.quiet:
        print(_preprocessing_line(args, preset, source), file=sys.stderr)


def skipped(source: object, why: object) -> None:
    """Say that a photo of a stream was skipped, and why (one line on stderr)."""
    _error(f"{source}: {why}; skipped")


def _runtime_options(parser: argparse.ArgumentParser, batch_size: int) -> None:
    """--batch-size, --device and --threads."""
    from fixtrace.backends import DEVICES

    parser.add_argument(
        "--batch-size", type=int, default=batch_size, metavar="N", help="images per forward pass (default: %(default)s)"
    )
    parser.add_argument(
        "--device", choices=DEVICES, default="auto", help="where the kernels run: auto (CUDA when a GPU is present), cpu or cuda"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="threads for onnxruntime, numba and BLAS, and for reading and writing pictures (default: 0, all cores)",
    )


#: The flags that override one field of the preset (besides --bgr/--rgb).
_FIELD_FLAGS = ("mean", "std", "scale", "resize", "crop")
#: Where the preset came from, as the printed preprocessing line says it (a file: its flag and path).
_SOURCE_NOTES = {
    "given": "--preset",
    "metadata": "from the model's metadata",
    "default": "default: the model carries no preprocessing metadata",
}


def _preprocessing_options(parser: argparse.ArgumentParser, purpose: str = "") -> None:
    """--preset or --preset-file, and the flags overriding fields of the preset."""
    from fixtrace.images.presets import PRESETS, RESIZE_POLICIES

    group = parser.add_argument_group(
        "preprocessing",
        f"the preset in the model's metadata, else imagenet, unless --preset or --preset-file says otherwise; "
        f"the other flags change fields of it{purpose}",
    )
    base = group.add_mutually_exclusive_group()
    base.add_argument("--preset", metavar="NAME", help=f"a named preset: {', '.join(PRESETS)}")
    base.add_argument("--preset-file", metavar="JSON", help="a preset as a JSON object of Preset fields (see README)")
    group.add_argument("--mean", metavar="A,B,C", help="subtract this mean per channel (one number: all three)")
    group.add_argument("--std", metavar="A,B,C", help="then divide by this std per channel (one number: all three)")
    group.add_argument("--scale", metavar="F", help="first multiply the 0..255 pixel values by F (1/255 works)")
    group.add_argument(
        "--resize",
        metavar="|".join(RESIZE_POLICIES),
        help="resize policy: short side + centre crop, exact input size, or letterbox (fit inside, pad with black)",
    )
    group.add_argument(
        "--crop",
        metavar="F|none",
        help="centre-crop fraction as timm's crop_pct, in (0, 1], e.g. 0.875: "
        "resize the short side to input/F (implies --resize short); none: no crop, the whole photo "
        "resized to the input (--resize exact), so the map covers all of it",
    )
    order = group.add_mutually_exclusive_group()
    order.add_argument("--bgr", dest="bgr", action="store_const", const=True, help="feed channels in BGR order")
    order.add_argument("--rgb", dest="bgr", action="store_const", const=False, help="feed channels in RGB order")


def _preset_choice(args: argparse.Namespace) -> PresetChoice:
    """The preset the preprocessing flags ask for, each bad value a one-line OptionError naming its flag."""
    from fixtrace.images.preset_choice import choose_preset, parse_crop, parse_number, parse_numbers
    from fixtrace.images.presets import get_preset

    parsers = {"mean": parse_numbers, "std": parse_numbers, "scale": parse_number, "crop": parse_crop}
    flags = _changed_fields(args)
    fields = {
        key: parsers[key](getattr(args, key), flag) if key in parsers else getattr(args, key) for key, flag in flags.items()
    }
    base = (
        get_preset(args.preset) if args.preset is not None else Path(args.preset_file) if args.preset_file is not None else None
    )
    return choose_preset(base, fields, flags)


def _changed_fields(args: argparse.Namespace) -> dict[str, str]:
    """The preset fields the flags change, each with its flag (none for verbs without the flags)."""
    flags = {key: f"--{key}" for key in _FIELD_FLAGS if getattr(args, key, None) is not None}
    if getattr(args, "bgr", None) is not None:
        flags["bgr"] = "--bgr" if args.bgr else "--rgb"
    return flags


def _preprocessing_line(args: argparse.Namespace, preset: Preset, source: str) -> str:
    """``preprocessing: <what is done> (<where it came from>)``."""
    where = f"--preset-file {args.preset_file}" if source == "file" else _SOURCE_NOTES[source]
    changed = _changed_fields(args)
    if changed:
        where += f"; changed by {', '.join(changed.values())}"
    return one_line(f"preprocessing: {preset.describe()} ({where})")


def _explain(args: argparse.Namespace) -> int:
    from concurrent.futures import Future

    from fixtrace import validate
    from fixtrace.api import BatchItem, Explainer, check_render_options
    from fixtrace.files import Checkpoint, UniqueNames, write_json_atomic
    from fixtrace.images.crops import crop_count
    from fixtrace.progress import Progress
    from fixtrace.runtime.in_order import InOrder

    preset = _preset_choice(args)
    check_render_options(args.sigma, args.box_threshold)
    style = _style(args)
    validate.integer("batch_size", args.batch_size, 1, flag="--batch-size")
    out = _output_folder(args.out)
    summary_path = out / "summary.json"
    if summary_path.is_symlink() or (summary_path.exists() and not summary_path.is_file()):
        raise OutputError(f"cannot write {summary_path}: something that is not a file is in the way")
    images = _collect_images(args.images)
    warnings.simplefilter("ignore", EmptyMapWarning)  # reported below, one line per photo
    given = ("conv_location", "labels", "threads", "device", "method", "layer", "ge", "output", "any_output", "backward")
    explainer = Explainer(args.model, preset=preset, **{name: getattr(args, name) for name in given})
    explainer.check_targets(args.target, args.top_k)
    crop_count(args.crops, explainer.preset, explainer.graph.image_input.fixed_batch)
    if not args.quiet:
        print(_preprocessing_line(args, explainer.preset, explainer.preset_source), file=sys.stderr)
    if explainer.session.fallback and not args.quiet:
        print(f"fixtrace: note: forward on the CPU: {explainer.session.fallback}", file=sys.stderr)
    if explainer.output.forced:
        print(f"fixtrace: warning: {explainer.output.reason}", file=sys.stderr)
    for label, reason in explainer.skipped.items():
        print(f"fixtrace: note: {label} left out: {reason}", file=sys.stderr)
    if not args.quiet:
        for note in explainer.method_notes():
            print(f"fixtrace: note: {one_line(note)}", file=sys.stderr)
    progress = Progress(len(images), enabled=not args.quiet)
    names = UniqueNames()
    folders = [names.take(hint) for _, hint in images]
    summary: list[dict] = []
    # Rewritten (atomically) as the run goes and at its end, so that an interrupted batch keeps
    # what it finished (a kill loses at most the last second's lines; the folders stay).
    checkpoint = Checkpoint(lambda: write_json_atomic(summary_path, summary, indent=1))
    items = explainer.explain_many(
        [path for path, _ in images],
        args.target,
        args.top_k,
        batch_size=args.batch_size,
        outlier_removal=not args.no_outlier_removal,
        sigma=args.sigma,
        box_threshold=args.box_threshold,
        crops=args.crops,
        **style,
    )

    def save(item: BatchItem) -> tuple[list[Path], list[Path]]:
        if item.error is not None:
            raise item.error
        empty = [e for found in item.by_method.values() for e in found if e.empty]
        if empty:
            raise FixtraceError(f"{empty[0].empty_message()}; nothing written")
        return _save(item.by_method, out / folders[item.index], args.layers, args.image_format)

    described = False

    def record(item: BatchItem, saving: Future[tuple[list[Path], list[Path]]]) -> bool:
        """The photo's line in the summary and its report; False when it failed. A fatal error
        (disk full) is raised."""
        nonlocal described
        image = images[item.index][0]
        entry: dict = {"image": str(image), "folder": folders[item.index]}
        try:
            written, grids = saving.result()
            if not args.quiet:
                if not described:
                    print(f"model {one_line(str(args.model))}: {one_line(explainer.output.describe())}")
                    described = True
                _report(image, item.by_method, written, grids)
            entry |= {
                "status": "ok",
                "outputs": [str(t) for t in written],
                "classes": [e.target.index for e in item.explanations or []],
            }
            if len(item.by_method) > 1:
                entry |= {"methods": list(item.by_method), "grids": [str(t) for t in grids]}
        except FixtraceError as exc:
            if _fatal(exc):
                raise
            _error(f"{image}: {exc}")
            entry |= {"status": "error", "error": str(exc)}
        summary.append(entry)
        checkpoint.changed()
        progress.step(one_line(image.name))
        return entry["status"] == "ok"

    failed = 0

    def finish(item: BatchItem, saving: Future[tuple[list[Path], list[Path]]]) -> None:
        nonlocal failed
        failed += not record(item, saving)

    # Pictures are encoded and written on writer threads while the next photos are explained;
    # the summary and the report follow the photos' order, at most a batch of photos waiting.
    try:
        with InOrder(save, finish, _writers(args.threads), args.batch_size) as writers:
            for item in items:
                writers.submit(item)
    except BaseException as exc:
        with contextlib.suppress(OutputError):  # the error under way is the one to tell
            checkpoint.flush()
        if _fatal(exc):
            done = sum(e["status"] == "ok" for e in summary)
            raise OutputError(
                f"{exc}: stopped after {done} of {len(images)} images (those and summary.json are kept)", fatal=True
            ) from None
        raise
    finally:
        items.close()
    checkpoint.flush()
    if len(images) > 1 and not args.quiet:
        print(f"{len(images) - failed} of {len(images)} images explained; summary in {one_line(str(summary_path))}")
    return EXIT_ITEM_FAILED if failed else EXIT_OK


def _writers(threads: int) -> int:
    """Writer threads for ``explain``'s pictures: as many as the thread limit (every usable core
    when there is none), at most 8. Encoding the PNGs takes longer than explaining the photo, and
    releases the GIL: on 2 cores, 96 photos took 11.1 s with one writer, 8.6 s with two."""
    from fixtrace.runtime.threads import usable_cores

    return max(1, min(8, threads or usable_cores()))


def _fatal(error: BaseException | None) -> bool:
    """Whether ``error`` stops a batch (a full disk)."""
    return isinstance(error, OutputError) and error.fatal


def _style(args: argparse.Namespace) -> dict:
    """The pictures' style from the flags, checked (``--clip`` a number or a fraction)."""
    from fixtrace.images.preset_choice import parse_number
    from fixtrace.render.display import Style

    clip = None if args.clip is None else parse_number(args.clip, "--clip")
    return Style.checked(
        colormap=args.colormap, legend=not args.no_legend, points=args.points, view=args.view, clip=clip
    ).to_json()


def _audit(args: argparse.Namespace) -> int:
    from fixtrace.audit.command import run

    return run(args)


def _output_folder(text: str) -> Path:
    """The --out folder, created; refused when empty or not creatable."""
    if not text.strip():
        raise OptionError("--out must name a folder, not an empty string")
    out = Path(text)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the output folder {out}: {exc.strerror or exc}") from None
    return out


def _save(by_method: dict[str, list], folder: Path, layers: bool, image_format: str = "png") -> tuple[list[Path], list[Path]]:
    """Write each method's explanations: ``folder`` itself for one method and class, else one
    sub-folder per method and per class, and for several methods a grid per class. Several
    explanations are written into a new folder that then takes ``folder``'s place, so files of an
    earlier run never mix with these.

    Returns:
        (the explanation folders, the grid pictures).

    Raises:
        OutputError: a write failed (``fatal`` when the disk is full).
    """
    from fixtrace.explanation import picture_format
    from fixtrace.files import method_folder, replace_folder, safe_name
    from fixtrace.render.grid import comparison_grid

    first = next(iter(by_method.values()))
    if len(by_method) == 1 and len(first) == 1:
        first[0].save(folder, layers=layers, image_format=image_format)
        return [folder], []
    suffix, options = picture_format(image_format)

    def class_folder(e) -> list[str]:
        return [] if len(first) == 1 else [f"{e.target.index}_{safe_name(e.target.name, 'class')}"]

    def fill(new: Path) -> tuple[list[Path], list[Path]]:
        written: list[Path] = []
        grids: list[Path] = []
        for label, explanations in by_method.items():
            method = [method_folder(label)] if len(by_method) > 1 else []
            for e in explanations:
                parts = [*method, *class_folder(e)]
                e.save(new.joinpath(*parts), layers=layers, image_format=image_format)
                written.append(folder.joinpath(*parts))
        if len(by_method) > 1:
            for rank, e in enumerate(first):
                name = "_".join(["grid", *class_folder(e)]) + suffix
                comparison_grid(e.image, [found[rank] for found in by_method.values()]).save(new / name, **options)
                grids.append(folder / name)
        return written, grids

    return replace_folder(folder, fill)


def _report(image: Path, by_method: dict[str, list], written: list[Path], grids: list[Path]) -> None:
    first = next(iter(by_method.values()))[0]
    print(one_line(str(image)))
    for rank, c in enumerate(first.top_classes, start=1):
        print(f"  {rank}. {c.index:>4d} {one_line(c.name):<28s} {c.probability:7.2%}")
    folders = iter(written)
    for explanations in by_method.values():
        for e in explanations:
            what = f"{int(e.inliers.sum())} fixation points" if e.has_points else e.settings["method"]
            if len(by_method) > 1:
                what = e.method if not e.has_points else f"{e.method}, {what}"
            print(
                f"  explained {e.target.index} {one_line(e.target.name)}: {what}, box {e.box} -> {one_line(str(next(folders)))}"
            )
    if grids:
        print(f"  side by side: {', '.join(one_line(str(g)) for g in grids)}")


def _collect_images(items: Sequence[str]) -> list[tuple[Path, str]]:
    """Each image to explain, with the text its output folder is named after.

    A folder is searched with its sub-folders (hidden files and folders skipped, symbolic links
    to folders not followed); a file is taken as given, and fails on its own if it is not an image.

    Raises:
        FixtraceError: a folder holds no image.
    """
    images: list[tuple[Path, str]] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = _images_in(path)
            if not found:
                raise FixtraceError(
                    f"no images in folder {path} or its sub-folders (hidden files skipped; looked for "
                    f"{', '.join(sorted(IMAGE_SUFFIXES))})"
                )
            images += [(p, "_".join(p.relative_to(path).with_suffix("").parts)) for p in found]
        else:
            images.append((path, path.stem))  # a missing or odd file fails on its own, without stopping the batch
    return images


def _images_in(folder: Path) -> list[Path]:
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(root) / f for f in files if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_SUFFIXES]
    return sorted(found, key=lambda p: p.relative_to(folder).parts)


def _info(args: argparse.Namespace) -> int:
    import numba
    import numpy
    import onnx

    import fixtrace
    from fixtrace import ops
    from fixtrace.methods import METHODS, method_names
    from fixtrace.runtime.session import available_providers, ort

    print(f"fixtrace {fixtrace.__version__}")
    print(f"onnx {onnx.__version__}, onnxruntime {ort.__version__}, numba {numba.__version__}, numpy {numpy.__version__}")
    print(f"onnxruntime providers available: {', '.join(available_providers())}")
    from fixtrace.backends import cuda_status

    status = cuda_status()
    if status["gpu"]:
        print(f"numba CUDA: GPU {status['name']} (compute capability {status['compute_capability']})")
    else:
        print(f"numba CUDA: no GPU ({status.get('reason', 'unavailable')})")
    print(f"backend for --device auto: {'cuda (numba.cuda.jit)' if status['gpu'] else 'cpu (numba njit)'}")
    print(f"fixation rules for: {', '.join(ops.supported('fixation'))}")
    print(f"gradient rules for: {', '.join(ops.supported('gradient'))}")
    print("methods:")
    width = max(map(len, method_names()))
    for name in method_names():
        print(f"  {name:<{width}s} {METHODS[name].summary}{_method_options(METHODS[name])}")
    if args.model:
        from fixtrace.api import Explainer

        explainer = Explainer(args.model, device=args.device, method="all")
        spec = explainer.graph.image_input
        print(one_line(explainer.output.describe()))
        print(
            f"model {one_line(str(args.model))}: input {spec.name!r} {spec.shape} {spec.layout}, opset {explainer.graph.opset}, "
            f"logits {explainer.logits!r} ({explainer.num_classes} classes), "
            f"{_backward_path(explainer)}backend {explainer.backend.name}, "
            f"providers in use: {', '.join(explainer.session.providers_in_use)}"
        )
        print(_preprocessing_line(args, explainer.preset, explainer.preset_source))
        if explainer.session.fallback:
            print(f"forward fallback: {explainer.session.fallback}")
        for name in method_names():
            reason = explainer.skipped.get(name, "").split("; supported ops:")[0]
            print(f"  {name:<{width}s} {'runs on this model' if not reason else 'cannot run: ' + one_line(reason)}")
    return EXIT_OK


def _backward_path(explainer) -> str:
    """``N nodes on the backward path, `` when fixations run on the model, else ""."""
    return "" if "fixations" in explainer.skipped else f"{len(explainer.plan.rules)} nodes on the backward path, "


def _method_options(cls) -> str:
    """`` (options: key=default, ...)`` of a method, or ""."""
    options = [f"{k}={'auto' if p.default is None else p.default}" for k, p in cls.parameters.items()]
    options += ["ge"] if cls.coarse_maps else []
    return f" [{', '.join(options)}]" if options else ""


def _evaluate(args: argparse.Namespace) -> int:
    from fixtrace import validate
    from fixtrace.evaluate import evaluate, parse_method, read_dataset, save, to_markdown
    from fixtrace.progress import Progress

    preset = _preset_choice(args)
    specs = [parse_method(m) for m in args.methods.split(",") if m.strip()]
    if not specs:
        raise OptionError(f"--methods names no method (got {args.methods!r})")
    if args.limit is not None:
        validate.integer("limit", args.limit, 1, flag="--limit")
    out = _output_folder(args.out)
    items = read_dataset(args.dataset)[: args.limit]
    progress = Progress(len(items) * len(specs), enabled=not args.quiet)
    evaluation = evaluate(
        args.model,
        items,
        specs,
        preset=preset,
        box_threshold=args.box_threshold,
        sigma=args.sigma,
        iou_threshold=args.iou,
        tolerance=args.tolerance,
        perturbation=args.perturbation,
        steps=args.steps,
        batch_size=args.batch_size,
        device=args.device,
        threads=args.threads,
        on_step=progress.step,
        on_preset=None
        if args.quiet
        else lambda chosen, source: print(_preprocessing_line(args, chosen, source), file=sys.stderr),
        name=str(args.model),
        dataset=str(args.dataset),
        explain=args.explain,
    )
    paths = save(evaluation, out)
    print(to_markdown(evaluation), end="")
    print(f"written: {', '.join(one_line(str(p)) for p in paths)}")
    for message in dict.fromkeys(error for row in evaluation.rows for error in row.errors):
        _error(message)
    return EXIT_ITEM_FAILED if any(row.failed for row in evaluation.rows) else EXIT_OK


def _layers(args: argparse.Namespace) -> int:
    from fixtrace.images.preprocess import input_size
    from fixtrace.model.layer_graph import LayerGraph
    from fixtrace.model.load import load_model

    choice = _preset_choice(args)
    graph = LayerGraph.from_model(load_model(args.model))
    preset, _ = choice.resolve(graph)
    spec = graph.image_input
    width, height = input_size(spec, preset)
    channels = spec.channels or 3
    shapes = graph.shapes((1, channels, height, width) if spec.layout == "NCHW" else (1, height, width, channels))
    print(f"{'tensor':<60s} {'op':<20s} shape")
    for node in graph.nodes:
        for tensor in node.outputs:
            if tensor:
                shape = "x".join(str(d) for d in shapes.get(tensor, ())) or "?"
                print(f"{tensor:<60s} {node.op_type:<20s} {shape}")
    return EXIT_OK


def _error(message: str) -> None:
    print(f"fixtrace: error: {one_line(message)}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
