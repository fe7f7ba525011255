"""Bad command-line arguments: every option with a wrong value, and odd-but-valid spellings."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hostile import onnx_models as m
from hostile.case import BAD_INPUT, Case, fails, ok
from hostile.corpus import CHELSEA, MOBILENET, SAMPLES, evaluate_args

TINY = "{in}/arguments/tiny.onnx"


def build(folder: Path) -> None:
    (folder / "tiny.onnx").write_bytes(m.classifier().SerializeToString())
    (folder / "labels_ok.txt").write_text("\n".join(f"class ../../{i}/x" for i in range(10)) + "\n")
    (folder / "labels_crlf_bom.txt").write_bytes("\ufeff".encode() + "\r\n".join(f"chat {i}" for i in range(10)).encode())
    (folder / "labels_short.txt").write_text("one\ntwo\n")
    (folder / "labels_empty.txt").write_text("")
    (folder / "labels_binary.txt").write_bytes(np.random.default_rng(3).bytes(2000))
    (folder / "labels_latin1.txt").write_bytes("\n".join(f"caf\xe9 {i}" for i in range(10)).encode("latin-1"))
    (folder / "labels_folder").mkdir(exist_ok=True)
    (folder / "a_file").write_text("not a folder")


def _explain(*extra: str, model: str = TINY) -> tuple[str, ...]:
    return ("explain", model, str(CHELSEA), "--out", "{out}", *extra)


def _evaluate(*extra: str) -> tuple[str, ...]:
    return evaluate_args(str(SAMPLES), *extra, perturbation=2)


USAGE = fails(BAD_INPUT, lines=1)  # argparse: its usage block and one "fixtrace explain: error:" line


def cases() -> list[Case]:
    refused_explain = {  # name -> (options, fragments)
        "class_out_of_range": (("--class", "5000"), ("class index 5000", "10 classes")),
        "class_negative": (("--class", "-1"), ("class index -1",)),
        "class_enormous": (("--class", "99999999999999999999"), ("out of range",)),
        "class_twice": (("--class", "1", "--class", "1"), ("class 1", "twice")),
        "top_k_zero": (("--top-k", "0"), ("top-k", "not 0")),
        "top_k_negative": (("--top-k", "-3"), ("top-k",)),
        "top_k_too_many": (("--top-k", "11"), ("top-k", "10")),
        "sigma_zero": (("--sigma", "0"), ("sigma",)),
        "sigma_negative": (("--sigma", "-1"), ("sigma",)),
        "sigma_inf": (("--sigma", "inf"), ("sigma", "inf")),
        "sigma_nan": (("--sigma", "nan"), ("sigma",)),
        "sigma_overflow": (("--sigma", "1e999"), ("sigma",)),
        "sigma_above_one": (("--sigma", "2"), ("sigma",)),
        "box_zero": (("--box-threshold", "0"), ("box threshold",)),
        "box_above_one": (("--box-threshold", "1.5"), ("box threshold",)),
        "box_nan": (("--box-threshold", "nan"), ("box threshold",)),
        "box_inf": (("--box-threshold", "inf"), ("box threshold",)),
        "threads_negative": (("--threads", "-1"), ("--threads",)),
        "threads_absurd": (("--threads", "100000"), ("--threads",)),
        "batch_zero": (("--batch-size", "0"), ("--batch-size",)),
        "batch_negative": (("--batch-size", "-4"), ("--batch-size",)),
        "method_unknown": (("--method", "lime"), ("unknown method 'lime'", "gradcam")),
        "layer_unknown": (("--method", "gradcam", "--layer", "nope"), ("'nope'",)),
        "layer_with_fixations": (("--layer", "conv_out"), ("--layer",)),
        "layer_not_spatial": (("--method", "gradcam", "--layer", "flat"), ("'flat'",)),
        "ge_with_saliency": (("--method", "saliency", "--ge"), ("saliency",)),
        "preset_unknown": (("--preset", "yolo"), ("unknown preprocessing preset 'yolo'",)),
        "labels_missing": (("--labels", "{in}/arguments/nope.txt"), ("not found",)),
        "labels_folder": (("--labels", "{in}/arguments/labels_folder"), ("is a folder",)),
        "labels_short": (("--labels", "{in}/arguments/labels_short.txt"), ("2 names for 10 classes",)),
        "labels_empty": (("--labels", "{in}/arguments/labels_empty.txt"), ("0 names",)),
        "labels_binary": (("--labels", "{in}/arguments/labels_binary.txt"), ("UTF-8",)),
        "labels_latin1": (("--labels", "{in}/arguments/labels_latin1.txt"), ("UTF-8",)),
        "out_is_a_file": (("--out", "{in}/arguments/a_file"), ("a_file",)),
        "out_under_a_file": (("--out", "{in}/arguments/a_file/sub"), ("a_file",)),
        "out_empty": (("--out", ""), ("--out",)),
        "output_unknown": (("--output", "probs"), ("'probs'",)),
    }
    fast = {"sigma_inf", "threads_negative", "class_twice", "box_nan", "labels_binary", "out_empty", "method_unknown"}
    out = [
        Case(
            f"arguments/explain_{name}", fails(BAD_INPUT, *fragments, absent=("chelsea",)), _explain(*options), fast=name in fast
        )
        for name, (options, fragments) in refused_explain.items()
    ]
    usage = {
        "class_text": ("--class", "abc"),
        "class_float": ("--class", "1.5"),
        "class_and_top_k": ("--class", "1", "--top-k", "2"),
        "threads_text": ("--threads", "many"),
        "device_unknown": ("--device", "tpu"),
        "conv_location": ("--conv-location", "x"),
        "unknown_option": ("--colour", "red"),
        "sigma_text": ("--sigma", "wide"),
    }
    out += [
        Case(f"arguments/explain_{name}", USAGE, _explain(*options), fast=name == "class_text") for name, options in usage.items()
    ]
    out += [
        Case("arguments/no_command", USAGE, ()),
        Case("arguments/unknown_command", USAGE, ("explian", TINY)),
        Case("arguments/explain_no_image", USAGE, ("explain", TINY)),
        Case("arguments/help", ok(), ("--help",)),
        Case("arguments/explain_help", ok(stdout=("--out",)), ("explain", "--help")),
        Case(
            "arguments/explain_top_k_all",
            ok("chelsea/0_class_0/overlay.png", "chelsea/9_class_9/overlay.png"),
            _explain("--top-k", "10"),
        ),
        Case("arguments/explain_batch_huge", ok("chelsea/overlay.png"), _explain("--batch-size", "100000")),
        Case("arguments/explain_threads_one", ok("chelsea/overlay.png"), _explain("--threads", "1")),
        Case("arguments/explain_method_spelling", ok("chelsea/overlay.png"), _explain("--method", "GradCAM"), fast=True),
        Case("arguments/explain_method_underscore", ok("chelsea/overlay.png"), _explain("--method", "guided_backprop")),
        Case("arguments/explain_preset_spelling", ok("chelsea/overlay.png"), _explain("--preset", "ImageNet")),
        Case("arguments/explain_sigma_one", ok("chelsea/overlay.png"), _explain("--sigma", "1")),
        Case("arguments/explain_box_one", ok("chelsea/overlay.png"), _explain("--box-threshold", "1")),
        Case(
            "arguments/explain_hostile_labels",
            ok("summary.json"),
            _explain("--labels", "{in}/arguments/labels_ok.txt", "--top-k", "3"),
            fast=True,
        ),
        Case(
            "arguments/explain_labels_crlf_bom",
            ok("chelsea/overlay.png"),
            _explain("--labels", "{in}/arguments/labels_crlf_bom.txt"),
        ),
        Case(
            "arguments/explain_model_and_image_swapped",
            fails(BAD_INPUT, "not a valid ONNX file"),
            ("explain", str(CHELSEA), TINY, "--out", "{out}"),
        ),
        Case("arguments/explain_quiet_failure", fails(BAD_INPUT, "sigma"), _explain("--quiet", "--sigma", "-2")),
        Case("arguments/info_unknown_device", USAGE, ("info", TINY, "--device", "gpu")),
        Case("arguments/info_missing_model", fails(BAD_INPUT, "not found"), ("info", "{in}/arguments/nope.onnx")),
        Case("arguments/layers_bad_preset", fails(BAD_INPUT, "unknown preprocessing preset"), ("layers", TINY, "--preset", "x")),
        Case("arguments/layers_missing_model", fails(BAD_INPUT, "not found"), ("layers", "{in}/arguments/nope.onnx")),
        Case("arguments/layers_mobilenet", ok(stdout=("Conv",)), ("layers", str(MOBILENET))),
    ]
    refused_evaluate = {
        "iou_zero": (("--iou", "0"), ("--iou",)),
        "iou_above_one": (("--iou", "1.5"), ("--iou",)),
        "iou_nan": (("--iou", "nan"), ("--iou",)),
        "tolerance_negative": (("--tolerance", "-1"), ("--tolerance",)),
        "tolerance_nan": (("--tolerance", "nan"), ("--tolerance",)),
        "tolerance_inf": (("--tolerance", "inf"), ("--tolerance",)),
        "perturbation_negative": (("--perturbation", "-1"), ("--perturbation",)),
        "steps_zero": (("--steps", "0"), ("--steps",)),
        "limit_zero": (("--limit", "0"), ("--limit",)),
        "batch_zero": (("--batch-size", "0"), ("--batch-size",)),
        "threads_negative": (("--threads", "-2"), ("--threads",)),
        "sigma_inf": (("--sigma", "inf"), ("sigma",)),
        "box_nan": (("--box-threshold", "nan"), ("box threshold",)),
        "methods_empty": (("--methods", ""), ("--methods",)),
        "methods_commas": (("--methods", ",,"), ("--methods",)),
        "method_unknown": (("--methods", "lime"), ("unknown method 'lime'",)),
        "method_box_above_one": (("--methods", "gradcam:box=2"), ("box=",)),
        "method_box_nan": (("--methods", "gradcam:box=nan"), ("box=",)),
        "method_sigma_zero": (("--methods", "fixations:sigma=0"), ("sigma=",)),
        "method_flag_unknown": (("--methods", "gradcam:sharp"), ("unknown flag 'sharp'",)),
        "method_flag_wrong_method": (("--methods", "saliency:centre"), ("does not apply",)),
        "out_is_a_file": (("--out", "{in}/arguments/a_file"), ("a_file",)),
    }
    fast_evaluate = {"tolerance_nan", "method_box_nan", "threads_negative"}
    out += [
        Case(f"arguments/evaluate_{name}", fails(BAD_INPUT, *fragments), _evaluate(*options), fast=name in fast_evaluate)
        for name, (options, fragments) in refused_evaluate.items()
    ]
    out += [
        Case("arguments/evaluate_explain_unknown", USAGE, _evaluate("--explain", "both")),
        Case("arguments/evaluate_limit_beyond", ok("evaluation.json"), _evaluate("--limit", "1000")),
        Case("arguments/evaluate_spelling", ok("evaluation.json"), _evaluate("--methods", "GradCAM, saliency ,")),
    ]
    return out
