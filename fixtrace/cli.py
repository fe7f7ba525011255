"""The ``fixtrace`` command line. Every known failure ends as one line and a non-zero exit."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import traceback
from pathlib import Path
from typing import Sequence

from fixtrace.errors import FixtraceError

EXIT_OK, EXIT_ITEM_FAILED, EXIT_ERROR, EXIT_INTERNAL = 0, 1, 2, 3
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fixtrace`` console script; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except FixtraceError as exc:
        _error(str(exc))
        return EXIT_ERROR
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


def _parser() -> argparse.ArgumentParser:
    from fixtrace.render.heatmap import DEFAULT_SIGMA

    parser = argparse.ArgumentParser(prog="fixtrace", description="Explain CNN image classifiers through their ONNX graph.")
    sub = parser.add_subparsers(dest="command", required=True)

    ex = sub.add_parser("explain", help="explain photos with CNN Fixations and write overlays, heat maps and JSON")
    ex.add_argument("model", help="the .onnx model")
    ex.add_argument("images", nargs="+", help="image files or folders of images")
    ex.add_argument("--out", default="out", help="output folder (default: out); one sub-folder per image")
    which = ex.add_mutually_exclusive_group()
    which.add_argument("--class", dest="target", type=int, action="append", metavar="N",
                       help="class index to explain (repeatable); default: the predicted class")
    which.add_argument("--top-k", type=int, metavar="K", help="explain the K best classes, one map each")
    ex.add_argument("--preset", default="imagenet", help="preprocessing: imagenet, caffe, tf, raw (default: imagenet)")
    ex.add_argument("--method", default="fixations", metavar="NAME",
                    help="fixations (default), saliency, guided-backprop, deconvnet, cam, gradcam, guided-gradcam")
    ex.add_argument("--layer", help="the tensor cam/gradcam read (default: the last spatial map; see `fixtrace layers`)")
    ex.add_argument("--ge", action="store_true", help="sharpen the map with Gradual Extrapolation (fixations, cam, gradcam)")
    ex.add_argument("--conv-location", choices=("argmax", "centre"), default="argmax",
                    help="where a conv fixation lands in its window (default: argmax)")
    ex.add_argument("--no-outlier-removal", action="store_true", help="keep isolated fixation points")
    ex.add_argument("--sigma", type=float, default=DEFAULT_SIGMA, help="heat-map blur, fraction of the short side (default: %(default).3g)")
    ex.add_argument("--box-threshold", type=float,
                    help="box cut at this fraction of the map's max (default: the method's, chosen on bench/localization.py)")
    ex.add_argument("--layers", action="store_true", help="also write per-layer fixation counts and points")
    ex.add_argument("--labels", help="class names file, one per line (default: ImageNet names for 1000 classes)")
    ex.add_argument("--threads", type=int, default=0, help="onnxruntime threads (default: all cores)")
    ex.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                    help="where the backward rules run: auto (CUDA when a GPU is present), cpu or cuda (default: auto)")
    ex.add_argument("--batch-size", type=int, default=8, metavar="N",
                    help="images per forward pass and backward walk (default: 8)")
    ex.add_argument("--quiet", action="store_true", help="print only errors")
    ex.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    ex.set_defaults(run=_explain)

    info = sub.add_parser("info", help="print versions, onnxruntime providers, CUDA status and the supported ops")
    info.add_argument("model", nargs="?", help="also describe this model: input, layout, logits, unsupported ops")
    info.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="device for the model check (default: auto)")
    info.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    info.set_defaults(run=_info)

    from fixtrace.evaluate import dataset as dataset_format
    from fixtrace.evaluate.methods import DEFAULT_METHODS, FLAGS

    ev = sub.add_parser("evaluate", help="score explanation methods on a folder of images with boxes (method x metric table)",
                        description="Explain every image of DATASET_DIR with each method and print the method x metric "
                                    "table: top-1 localization error, GT-known localization error, pointing game, "
                                    "energy in the box, deletion and insertion AUC, time per image.",
                        epilog=dataset_format.__doc__.split("\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    ev.add_argument("model", help="the .onnx model")
    ev.add_argument("dataset", help="folder of images with a boxes.csv (format below)")
    ev.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                    help=f"comma-separated methods, each name[:flag...], flags {', '.join(FLAGS)} (default: %(default)s)")
    ev.add_argument("--out", default="evaluation", help="folder for evaluation.md/.csv/.json (default: evaluation)")
    ev.add_argument("--preset", default="imagenet", help="preprocessing: imagenet, caffe, tf, raw (default: imagenet)")
    ev.add_argument("--sigma", type=float, default=DEFAULT_SIGMA, help="fixations' blur, fraction of the short side (default: %(default).3g)")
    ev.add_argument("--box-threshold", type=float,
                    help="box cut at this fraction of the map's max (default: each method's; box=F in a spec overrides)")
    ev.add_argument("--iou", type=float, default=0.5, help="IoU a box needs to count as found (default: 0.5)")
    ev.add_argument("--tolerance", type=float, default=0.0, help="pointing-game tolerance in pixels (default: 0)")
    ev.add_argument("--perturbation", type=int, default=50, metavar="N",
                    help="deletion/insertion curves on the first N images of each method (default: 50; 0: none)")
    ev.add_argument("--steps", type=int, default=32, help="points per deletion/insertion curve (default: 32)")
    ev.add_argument("--explain", choices=("predicted", "label"), default="predicted",
                    help="the class each map explains: the model's top-1 (ILSVRC localization; default) or the "
                         "labelled class (pointing game)")
    ev.add_argument("--limit", type=int, metavar="N", help="only the first N images")
    ev.add_argument("--batch-size", type=int, default=16, metavar="N", help="images per forward and walk (default: 16)")
    ev.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="where the backward rules run (default: auto)")
    ev.add_argument("--threads", type=int, default=0, help="onnxruntime threads (default: all cores)")
    ev.add_argument("--quiet", action="store_true", help="no progress bar")
    ev.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    ev.set_defaults(run=_evaluate)

    layers = sub.add_parser("layers", help="list the model's feature maps (names for --layer) with op and shape")
    layers.add_argument("model", help="the .onnx model")
    layers.add_argument("--preset", default="imagenet", help="preprocessing preset, for the input size (default: imagenet)")
    layers.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    layers.set_defaults(run=_layers)
    return parser


def _explain(args: argparse.Namespace) -> int:
    from fixtrace.api import Explainer, check_render_options
    from fixtrace.progress import Progress

    preset = _preset(args.preset)
    check_render_options(args.sigma, args.box_threshold)
    images = _collect_images(args.images)
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FixtraceError(f"cannot create the output folder {out}: {exc.strerror or exc}") from None
    if args.batch_size < 1:
        raise FixtraceError(f"--batch-size must be at least 1, not {args.batch_size}")
    explainer = Explainer(args.model, preset=preset, conv_location=args.conv_location, labels=args.labels,
                          threads=args.threads, device=args.device, method=args.method, layer=args.layer, ge=args.ge)
    explainer.check_targets(args.target, args.top_k)
    if explainer.session.fallback and not args.quiet:
        print(f"fixtrace: note: forward on the CPU: {explainer.session.fallback}", file=sys.stderr)
    progress = Progress(len(images), enabled=not args.quiet)
    summary: list[dict] = []
    failed = 0
    folders = _folders(images)
    items = explainer.explain_many(images, args.target, args.top_k, batch_size=args.batch_size,
                                   outlier_removal=not args.no_outlier_removal, sigma=args.sigma,
                                   box_threshold=args.box_threshold)
    for item in items:
        image, folder = images[item.index], folders[item.index]
        try:
            if item.error is not None:
                raise item.error
            explanations = item.explanations
            written = []
            for e in explanations:
                target_dir = out / folder if len(explanations) == 1 else out / folder / f"{e.target.index}_{_slug(e.target.name)}"
                e.save(target_dir, layers=args.layers)
                written.append(str(target_dir))
            if not args.quiet:
                _report(image, explanations, written)
            summary.append({"image": str(image), "status": "ok", "outputs": written,
                            "classes": [e.target.index for e in explanations]})
        except FixtraceError as exc:
            failed += 1
            _error(f"{image}: {exc}")
            summary.append({"image": str(image), "status": "error", "error": str(exc)})
        # Written after every image so that an interrupted batch keeps what it finished.
        (out / "summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
        progress.step(image.name)
    if len(images) > 1 and not args.quiet:
        print(f"{len(images) - failed} of {len(images)} images explained; summary in {out / 'summary.json'}")
    return EXIT_ITEM_FAILED if failed else EXIT_OK


def _report(image: Path, explanations: list, written: list[str]) -> None:
    first = explanations[0]
    print(f"{image}")
    for rank, c in enumerate(first.top_classes, start=1):
        print(f"  {rank}. {c.index:>4d} {c.name:<28s} {c.probability:7.2%}")
    for e, where in zip(explanations, written):
        inliers = int(e.inliers.sum())
        what = f"{inliers} fixation points" if e.input_map is None else e.settings["method"]
        print(f"  explained {e.target.index} {e.target.name}: {what}, box {e.box} -> {where}")


def _collect_images(items: Sequence[str]) -> list[Path]:
    images: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not found:
                raise FixtraceError(f"no images in folder {path}")
            images.extend(found)
        else:
            images.append(path)  # a missing file fails on its own, without stopping the batch
    return images


def _folders(images: list[Path]) -> list[str]:
    """One output folder name per image: its stem, made unique."""
    used: set[str] = set()
    names = []
    for image in images:
        stem = _slug(image.stem) or "image"
        name, k = stem, 1
        while name in used:
            k += 1
            name = f"{stem}_{k}"
        used.add(name)
        names.append(name)
    return names


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:60]


def _info(args: argparse.Namespace) -> int:
    import numba
    import numpy
    import onnx

    import fixtrace
    from fixtrace.fixations import supported_ops
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
    print(f"fixation rules for: {', '.join(supported_ops())}")
    if args.model:
        from fixtrace.api import Explainer

        explainer = Explainer(args.model, device=args.device)
        spec = explainer.graph.image_input
        print(f"model {args.model}: input {spec.name!r} {spec.shape} {spec.layout}, opset {explainer.graph.opset}, "
              f"logits {explainer.logits!r} ({explainer.num_classes} classes), "
              f"{len(explainer.plan.rules)} nodes on the backward path, backend {explainer.backend.name}, "
              f"providers in use: {', '.join(explainer.session.providers_in_use)}")
        if explainer.session.fallback:
            print(f"forward fallback: {explainer.session.fallback}")
    return EXIT_OK


def _evaluate(args: argparse.Namespace) -> int:
    from fixtrace.evaluate import evaluate, parse_method, read_dataset, save, to_markdown
    from fixtrace.progress import Progress

    preset = _preset(args.preset)
    specs = [parse_method(m) for m in args.methods.split(",") if m.strip()]
    if not specs:
        raise FixtraceError("--methods names no method")
    if not 0 < args.iou <= 1:
        raise FixtraceError(f"--iou must be in (0, 1], not {args.iou}")
    if args.tolerance < 0:
        raise FixtraceError(f"--tolerance must be >= 0 pixels, not {args.tolerance}")
    if args.perturbation < 0 or args.steps < 1 or args.batch_size < 1 or args.limit is not None and args.limit < 1:
        raise FixtraceError("--perturbation must be >= 0, and --steps, --batch-size and --limit >= 1")
    items = read_dataset(args.dataset)[: args.limit]
    progress = Progress(len(items) * len(specs), enabled=not args.quiet)
    evaluation = evaluate(args.model, items, specs, preset=preset, box_threshold=args.box_threshold, sigma=args.sigma,
                          iou_threshold=args.iou, tolerance=args.tolerance, perturbation=args.perturbation, steps=args.steps,
                          batch_size=args.batch_size, device=args.device, threads=args.threads, on_step=progress.step,
                          name=str(args.model), dataset=str(args.dataset), explain=args.explain)
    try:
        paths = save(evaluation, args.out)
    except OSError as exc:
        raise FixtraceError(f"cannot write the results to {args.out}: {exc.strerror or exc}") from None
    print(to_markdown(evaluation), end="")
    print(f"written: {', '.join(str(p) for p in paths)}")
    return EXIT_ITEM_FAILED if any(row.failed for row in evaluation.rows) else EXIT_OK


def _layers(args: argparse.Namespace) -> int:
    from fixtrace.images.preprocess import input_size
    from fixtrace.model.layer_graph import LayerGraph
    from fixtrace.model.load import load_model

    preset = _preset(args.preset)
    graph = LayerGraph.from_model(load_model(args.model))
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


def _preset(name: str):
    """The preprocessing preset called ``name``, or a one-line error."""
    from fixtrace.images.preprocess import get_preset

    try:
        return get_preset(name)
    except ValueError as exc:
        raise FixtraceError(str(exc)) from None


def _error(message: str) -> None:
    print(f"fixtrace: error: {message}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
