"""External-data tricks: weights stored beside the model, and locations that try to leave its folder."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import onnx
from onnx import TensorProto

from hostile import onnx_models as m
from hostile.case import BAD_INPUT, ITEM_FAILED, OK, Case, Context, Expect, fails, ok, raises, returns
from hostile.corpus import CHELSEA, FASHION

SECRETS = "../../../secrets"  # from inputs/external_data/<case>/ to ROOT/secrets


def _saved(folder: Path, location: str = "weights.bin", convert_attribute: bool = False, model=None) -> onnx.ModelProto:
    """Save the tiny classifier in ``folder`` with every tensor in ``location``; return the proto
    as written (external references, no data)."""
    (folder / location).parent.mkdir(parents=True, exist_ok=True)
    proto = model or m.external_net()
    onnx.save_model(
        proto,
        folder / "model.onnx",
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=location,
        size_threshold=0,
        convert_attribute=convert_attribute,
    )
    return onnx.load(folder / "model.onnx", load_external_data=False)


def _rewrite(folder: Path, proto: onnx.ModelProto, **entries: str) -> None:
    """Set external_data keys of the first external tensor (the conv weight) and save the proto."""
    tensor = next(t for t in proto.graph.initializer if t.data_location == TensorProto.EXTERNAL)
    for key, value in entries.items():
        found = next((e for e in tensor.external_data if e.key == key), None)
        if found is None:
            found = tensor.external_data.add()
            found.key = key
        found.value = value
    (folder / "model.onnx").write_bytes(proto.SerializeToString())


def _weight_bytes() -> int:
    return 4 * 3 * 3 * 3 * 4  # the conv weight W: 4x3x3x3 float32


def build(folder: Path) -> None:
    _saved(folder / "valid")
    _saved(folder / "valid_subfolder", "data/weights.bin")
    proto = _saved(folder / "symlink_inside")
    os.symlink("weights.bin", folder / "symlink_inside" / "alias.bin")
    _rewrite(folder / "symlink_inside", proto, location="alias.bin")
    constant = m.classifier()
    constant.graph.node.insert(
        0,
        onnx.helper.make_node(
            "Constant", [], ["W_const"], name="wconst", value=onnx.numpy_helper.from_array(m.weights((4, 3, 3, 3)))
        ),
    )
    constant.graph.node[1].input[1] = "W_const"
    del constant.graph.initializer[0]
    _saved(folder / "constant_attribute", convert_attribute=True, model=constant)

    tricks = {
        "dotdot": {"location": f"{SECRETS}/secret.bin"},
        "dotdot_deep": {"location": "../" * 12 + "etc/passwd"},
        "dotdot_inside_then_out": {"location": f"data/../{SECRETS}/secret.bin"},
        "absolute_etc": {"location": "/etc/passwd"},
        "backslashes": {"location": "..\\..\\..\\secrets\\secret.bin"},
        "url": {"location": "file:///etc/passwd"},
        "empty_location": {"location": ""},
        "nul_in_location": {"location": "weights.bin\x00../../x"},
        "missing_file": {"location": "nothing.bin"},
        "offset_beyond": {"offset": str(10**6)},
        "length_beyond": {"length": str(10**6)},
        "huge_length": {"length": str(10**15)},
        "negative_offset": {"offset": "-8"},
        "text_offset": {"offset": "eight"},
        "short_length": {"length": "12"},
        "unknown_key": {"evil": "x"},
        "checksum_key": {"checksum": "0" * 40},
        "model_file_itself": {"location": "model.onnx", "offset": "0", "length": str(_weight_bytes())},
    }
    for name, entries in tricks.items():
        proto = _saved(folder / name)
        _rewrite(folder / name, proto, **entries)
    secret = Path(folder).resolve().parents[1] / "secrets" / "secret.bin"
    links = {
        "absolute_secret": None,
        "symlink_file_outside": "evil.bin",
        "symlink_dir_outside": "dirlink/secret.bin",
        "fifo": "pipe.bin",
        "dev_zero": "zero.bin",
        "directory": "sub",
    }
    for name, location in links.items():
        case = folder / name
        proto = _saved(case)
        if name == "absolute_secret":
            location = str(secret)
        elif name == "symlink_file_outside":
            os.symlink(secret, case / "evil.bin")
        elif name == "symlink_dir_outside":
            os.symlink(secret.parent, case / "dirlink")
        elif name == "fifo":
            os.mkfifo(case / "pipe.bin")
        elif name == "dev_zero":
            os.symlink("/dev/zero", case / "zero.bin")
        elif name == "directory":
            (case / "sub").mkdir()
        _rewrite(case, proto, location=location)
    proto = _saved(folder / "no_entries")
    tensor = next(t for t in proto.graph.initializer if t.data_location == TensorProto.EXTERNAL)
    del tensor.external_data[:]
    (folder / "no_entries" / "model.onnx").write_bytes(proto.SerializeToString())
    # A model reached through a symlink whose data sits beside the real file (a Hugging Face cache).
    blobs, snapshot = folder / "hub" / "blobs", folder / "hub" / "snapshots" / "abc"
    _saved(blobs)
    snapshot.mkdir(parents=True)
    os.symlink(blobs / "model.onnx", snapshot / "model.onnx")
    os.symlink(blobs / "weights.bin", snapshot / "weights.bin")
    shutil.copy(FASHION / "samples" / "boxes.csv", folder / "boxes.csv")


def _explain(name: str, *extra: str) -> tuple[str, ...]:
    return ("explain", f"{{in}}/external_data/{name}/model.onnx", str(CHELSEA), "--out", "{out}", *extra)


def _api_bytes(ctx: Context):
    import fixtrace

    return fixtrace.explain((ctx.inputs / "external_data" / "valid" / "model.onnx").read_bytes(), CHELSEA)


def _api_unloaded_proto(ctx: Context):
    import fixtrace

    return fixtrace.explain(onnx.load(ctx.inputs / "external_data" / "valid" / "model.onnx", load_external_data=False), CHELSEA)


def _api_loaded_proto(ctx: Context):
    import fixtrace

    return fixtrace.explain(onnx.load(ctx.inputs / "external_data" / "valid" / "model.onnx"), CHELSEA)


def _api_dotdot(ctx: Context):
    import fixtrace

    return fixtrace.Explainer(ctx.inputs / "external_data" / "dotdot" / "model.onnx")


def cases() -> list[Case]:
    outside = "outside the model's folder"
    refused = {
        "dotdot": outside,
        "dotdot_deep": outside,
        "dotdot_inside_then_out": outside,
        "backslashes": outside,
        "absolute_etc": "absolute",
        "absolute_secret": "absolute",
        "symlink_file_outside": outside,
        "symlink_dir_outside": outside,
        "fifo": "not a regular file",
        "dev_zero": outside,
        "directory": "is a folder",
        "url": "not found",
        "missing_file": "not found",
        "empty_location": "no location",
        "nul_in_location": "NUL",
        "no_entries": "no location",
        "offset_beyond": "beyond the end",
        "length_beyond": "beyond the end",
        "huge_length": "beyond the end",
        "negative_offset": "offset",
        "text_offset": "offset",
        "short_length": "bytes",
    }
    fast = {"dotdot", "absolute_etc", "symlink_file_outside", "symlink_dir_outside", "fifo", "huge_length", "valid"}
    out = [
        Case(f"external_data/{name}", fails(BAD_INPUT, fragment, "'W'"), _explain(name), fast=name in fast, timeout=60)
        for name, fragment in refused.items()
    ]
    valid = ("valid", "valid_subfolder", "symlink_inside", "constant_attribute", "unknown_key", "checksum_key")
    out += [Case(f"external_data/{name}", ok("chelsea/overlay.png"), _explain(name), fast=name in fast) for name in valid]
    out += [
        Case("external_data/model_file_itself", Expect((OK, ITEM_FAILED, BAD_INPUT)), _explain("model_file_itself")),
        Case(
            "external_data/hub_cache_symlinks",
            ok("chelsea/overlay.png"),
            ("explain", "{in}/external_data/hub/snapshots/abc/model.onnx", str(CHELSEA), "--out", "{out}"),
        ),
        Case("external_data/info_dotdot", fails(BAD_INPUT, outside), ("info", "{in}/external_data/dotdot/model.onnx")),
        Case(
            "external_data/layers_absolute",
            fails(BAD_INPUT, "absolute"),
            ("layers", "{in}/external_data/absolute_etc/model.onnx"),
        ),
        Case(
            "external_data/evaluate_symlink_outside",
            fails(BAD_INPUT, outside),
            ("evaluate", "{in}/external_data/symlink_file_outside/model.onnx", str(FASHION / "samples"), "--out", "{out}"),
        ),
        Case("external_data/api_bytes", raises("ModelError", "external data"), call=_api_bytes, fast=True),
        Case("external_data/api_unloaded_proto", raises("ModelError", "external data"), call=_api_unloaded_proto),
        Case("external_data/api_loaded_proto", returns(), call=_api_loaded_proto),
        Case("external_data/api_dotdot", raises("ModelError", outside), call=_api_dotdot),
    ]
    return out
