"""The Python API misused: wrong types and values for every public entry point."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from hostile import onnx_models as m
from hostile.case import Case, Context, raises, returns
from hostile.corpus import CHELSEA, COFFEE, FASHION

TINY = "api/tiny.onnx"


def build(folder: Path) -> None:
    (folder / "tiny.onnx").write_bytes(m.classifier().SerializeToString())
    (folder / "a_file").write_text("not a folder")


def _tiny(ctx: Context) -> Path:
    return ctx.inputs / TINY


def _explain(*args, **kwargs):
    """A call of fixtrace.explain on the tiny model and chelsea, with these changes."""

    def call(ctx: Context):
        import fixtrace

        model = kwargs.pop("model", _tiny(ctx))
        image = kwargs.pop("image", CHELSEA)
        return fixtrace.explain(model, image, *args, **kwargs)

    return call


def _explainer(**kwargs):
    def call(ctx: Context):
        import fixtrace

        return fixtrace.Explainer(kwargs.pop("model", _tiny(ctx)), **kwargs)

    return call


def _many(images, **kwargs):
    def call(ctx: Context):
        import fixtrace

        items = list(fixtrace.Explainer(_tiny(ctx)).explain_many(images(ctx) if callable(images) else images, **kwargs))
        if any(item.error is None and not item.explanations for item in items):
            raise AssertionError("an item with neither explanations nor an error")
        return items

    return call


def _many_stream(ctx: Context):
    import fixtrace

    photos = (p for p in (CHELSEA, COFFEE, ctx.inputs / "api" / "a_file"))
    items = list(fixtrace.Explainer(_tiny(ctx)).explain_many(photos, batch_size=2))
    if [item.error is None for item in items] != [True, True, False]:
        raise AssertionError(f"expected two explained photos and one error, got {items}")


def _save_under_a_file(ctx: Context):
    import fixtrace

    fixtrace.explain(_tiny(ctx), CHELSEA).save(ctx.inputs / "api" / "a_file" / "sub")


def _array(array):
    return _explain(image=array)


def _metric(name: str, *args, **kwargs):
    def call(ctx: Context):
        from fixtrace import metrics

        return getattr(metrics, name)(*args, **kwargs)

    return call


def _read_dataset(value):
    def call(ctx: Context):
        from fixtrace.evaluate import read_dataset

        return read_dataset(value)

    return call


def _evaluate(**kwargs):
    def call(ctx: Context):
        from fixtrace.evaluate import evaluate, parse_method, read_dataset

        items = kwargs.pop("items", None) or read_dataset(FASHION / "samples")[:2]
        return evaluate(FASHION / "resnet.onnx", items, kwargs.pop("specs", [parse_method("gradcam")]), preset="raw", **kwargs)

    return call


def cases() -> list[Case]:
    heat = np.ones((20, 30), np.float32)
    nan_heat = heat.copy()
    nan_heat[3, 3] = np.nan
    rgb = np.asarray(Image.open(CHELSEA).convert("RGB"))
    calls = {
        "model_none": (raises("ModelError", "NoneType"), _explain(model=None)),
        "model_list": (raises("ModelError", "list"), _explain(model=["a.onnx"])),
        "model_int": (raises("ModelError", "int"), _explain(model=42)),
        "model_empty_bytes": (raises("ModelError", "empty"), _explain(model=b"")),
        "model_garbage_bytes": (raises("ModelError", "not a valid ONNX"), _explain(model=b"\x08\x07garbage" * 10)),
        "model_missing_path": (raises("ModelError", "not found"), _explain(model=Path("nope.onnx"))),
        "image_none": (raises("ImageError", "NoneType"), _explain(image=None)),
        "image_float": (raises("ImageError", "float"), _explain(image=3.14)),
        "image_empty_bytes": (raises("ImageError", "empty"), _explain(image=b"")),
        "image_folder": (raises("ImageError", "is a folder"), _explain(image=FASHION)),
        "image_nan_array": (raises("ImageError", "NaN"), _array(np.full((20, 20, 3), np.nan, np.float32))),
        "image_two_channels": (raises("ImageError", "(20, 20, 2)"), _array(np.zeros((20, 20, 2), np.uint8))),
        "image_object_array": (raises("ImageError", "object"), _array(np.empty((4, 4, 3), dtype=object))),
        "image_empty_array": (raises("ImageError", "empty"), _array(np.zeros((0, 0, 3), np.uint8))),
        "image_4d_array": (raises("ImageError", "(1, 20, 20, 3)"), _array(np.zeros((1, 20, 20, 3), np.uint8))),
        "image_complex_array": (raises("ImageError", "complex"), _array(np.zeros((4, 4, 3), np.complex64))),
        "image_lab_pil": (returns(), _array(Image.fromarray(rgb).convert("LAB"))),
        "image_bool_array": (returns(), _array(np.eye(40, dtype=bool))),
        "image_float_255_array": (returns(), _array(rgb.astype(np.float32))),
        "image_int16_pil": (returns(), _array(Image.fromarray(rgb[:, :, 0].astype(np.uint16) * 200))),
        "top_k_text": (raises("TargetError", "top_k"), _explain(top_k="3")),
        "top_k_zero": (raises("TargetError", "top_k"), _explain(top_k=0)),
        "top_k_bool": (raises("TargetError", "top_k"), _explain(top_k=True)),
        "top_k_float": (raises("TargetError", "top_k"), _explain(top_k=2.0)),
        "target_text": (raises("TargetError", "'3'"), _explain(target="3")),
        "target_float": (raises("TargetError", "3.5"), _explain(target=3.5)),
        "target_mixed_list": (raises("TargetError", "'a'"), _explain(target=[1, "a"])),
        "target_negative": (raises("TargetError", "-1"), _explain(target=-1)),
        "target_too_big": (raises("TargetError", "10 classes"), _explain(target=10)),
        "target_empty_list": (raises("TargetError", "no class"), _explain(target=[])),
        "target_numpy_int": (returns(), _explain(target=np.int64(3))),
        "target_tuple": (returns(), _explain(target=(1, 2))),
        "target_and_top_k": (raises("OptionError", "top_k"), _explain(target=3, top_k=2)),
        "sigma_text": (raises("OptionError", "sigma"), _explain(sigma="x")),
        "sigma_inf": (raises("OptionError", "sigma"), _explain(sigma=float("inf"))),
        "sigma_none": (raises("OptionError", "sigma"), _explain(sigma=None)),
        "box_zero": (raises("OptionError", "box"), _explain(box_threshold=0)),
        "box_text": (raises("OptionError", "box"), _explain(box_threshold="half")),
        "outlier_text": (raises("OptionError", "outlier_removal"), _explain(outlier_removal="no")),
        "unknown_keyword": (raises("OptionError", "sigm", "sigma"), _explain(sigm=0.1)),
        "preset_unknown": (raises("OptionError", "preset"), _explain(preset="nope")),
        "preset_number": (raises("OptionError", "preset"), _explain(preset=3)),
        "conv_location": (raises("OptionError", "conv_location"), _explain(conv_location="middle")),
        "device_unknown": (raises("OptionError", "device"), _explain(device="gpu")),
        "method_unknown": (raises("OptionError", "lime"), _explain(method="lime")),
        "method_none": (raises("OptionError", "method"), _explain(method=None)),
        "layer_number": (raises("OptionError", "layer"), _explain(method="gradcam", layer=3)),
        "ge_text": (raises("OptionError", "ge"), _explain(ge="yes")),
        "labels_missing": (raises("OptionError", "not found"), _explain(labels="nope.txt")),
        "explainer_threads": (raises("OptionError", "threads"), _explainer(threads=-1)),
        "explainer_threads_text": (raises("OptionError", "threads"), _explainer(threads="2")),
        "explainer_output_unknown": (raises("ModelError", "'nope'"), _explainer(output="nope")),
        "explainer_output_number": (raises("OptionError", "output"), _explainer(output=3)),
        "explainer_unknown_keyword": (raises("OptionError", "colour"), _explainer(colour="red")),
        "many_batch_zero": (raises("OptionError", "batch_size"), _many([CHELSEA], batch_size=0)),
        "many_batch_text": (raises("OptionError", "batch_size"), _many([CHELSEA], batch_size="8")),
        "many_a_string": (raises("OptionError", "a single"), _many(str(CHELSEA))),
        "many_bad_item_kept": (returns(), _many(lambda ctx: [CHELSEA, ctx.inputs / "api" / "a_file", None, COFFEE])),
        "many_generator": (returns(), _many_stream),
        "save_under_a_file": (raises("OutputError", "a_file"), _save_under_a_file),
        "metric_pointing_nan": (raises("OptionError", "NaN"), _metric("pointing_hit", nan_heat, [(0, 0, 5, 5)])),
        "metric_energy_bad_map": (raises("OptionError", "2-D"), _metric("energy_in_box", np.ones(5), [(0, 0, 5, 5)])),
        "metric_iou_bad_box": (raises("OptionError", "box"), _metric("iou", (0, 0, 5, 5), (0, 0, "a", 5))),
        "metric_box_found_threshold": (raises("OptionError", "threshold"), _metric("box_found", (0, 0, 5, 5), [(0, 0, 5, 5)], 2)),
        "metric_tolerance_negative": (raises("OptionError", "tolerance"), _metric("pointing_hit", heat, [(0, 0, 5, 5)], -1)),
        "dataset_none": (raises("DatasetError", "NoneType"), _read_dataset(None)),
        "dataset_missing": (raises("DatasetError", "not a folder"), _read_dataset("nope")),
        "evaluate_items_text": (raises("OptionError", "items"), _evaluate(items="abc")),
        "evaluate_specs_text": (raises("OptionError", "specs"), _evaluate(specs="gradcam")),
        "evaluate_tolerance_nan": (raises("OptionError", "tolerance"), _evaluate(tolerance=float("nan"))),
        "evaluate_steps_zero": (raises("OptionError", "steps"), _evaluate(steps=0)),
        "evaluate_ok": (returns(), _evaluate(perturbation=1, steps=4)),
    }
    fast = {
        "model_none",
        "top_k_text",
        "unknown_keyword",
        "target_and_top_k",
        "sigma_inf",
        "many_a_string",
        "many_generator",
        "image_nan_array",
        "metric_pointing_nan",
        "save_under_a_file",
        "evaluate_items_text",
    }
    return [Case(f"api/{name}", expect, call=call, fast=name in fast) for name, (expect, call) in calls.items()]
