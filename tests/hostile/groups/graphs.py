"""Structural oddities: graphs that parse but are not (or not obviously) image classifiers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from hostile import onnx_models as m
from hostile.case import BAD_INPUT, ITEM_FAILED, Case, fails, ok
from hostile.corpus import CHELSEA

OUTPUTS = ("chelsea/overlay.png", "chelsea/heatmap.npy", "chelsea/explanation.json")


def _models() -> dict[str, onnx.ModelProto]:
    reduce_any = m.classifier()
    return {
        "ok": m.classifier(),
        "no_outputs": m.no_output_net(),
        "no_input": m.no_input_net(),
        "two_inputs": m.two_input_net(),
        "rank2_input": m.rank_input_net([1, 96]),
        "rank3_input": m.rank_input_net([1, 32, 32]),
        "rank5_input": m.rank_input_net([1, 3, 4, 8, 8]),
        "uint8_input": m.cast_input_net(TensorProto.UINT8),
        "int64_input": m.cast_input_net(TensorProto.INT64),
        "bfloat16_input": m.cast_input_net(TensorProto.BFLOAT16),
        "float16_model": m.typed_net(TensorProto.FLOAT16, np.float16),
        "double_model": m.typed_net(TensorProto.DOUBLE, np.float64),
        "zero_size_input": m.classifier(dims=(1, 3, 0, 0)),
        "zero_channel_input": m.classifier(dims=(1, 0, 32, 32), channels=3),
        "two_channel_input": m.classifier(dims=(1, 2, 32, 32)),
        "four_channel_input": m.classifier(dims=(1, 4, 32, 32)),
        "eight_channel_input": m.classifier(dims=(1, 8, 32, 32)),
        "huge_input": m.classifier(dims=(1, 3, 30000, 30000)),
        "wide_input": m.classifier(dims=(1, 3, 8, 100000)),
        "symbolic_input": m.classifier(dims=("N", "C", "H", "W"), channels=3),
        "symbolic_spatial": m.classifier(dims=("N", 3, "H", "W")),
        "batch_two": m.classifier(dims=(2, 3, 32, 32)),
        "feature_output": m.feature_net("conv_out"),
        "pooled_output": m.feature_net("pooled"),
        "features_then_logits": m.feature_net("relu_out", extra_outputs=("logits",)),
        "logits_then_features": m.feature_net("logits", extra_outputs=("relu_out",)),
        "detection_output": m.dense_head_net("detection", [1, 100, 4]),
        "segmentation_output": m.dense_head_net("segmentation", [1, 21, 32, 32]),
        "argmax_output": m.dense_head_net("argmax", [1]),
        "pairs_output": m.dense_head_net("pairs", [1, 5, 2]),
        "single_score": m.dense_head_net("single", [1, 1]),
        "zero_classes": m.dense_head_net("empty", [1, 0]),
        "rank3_scores": m.dense_head_net("rank3", [1, 1, 10]),
        "identity_output": m.identity_output_net(),
        "constant_output": m.constant_output_net(),
        "softmax_head": m.softmax_net(),
        "log_softmax_head": m.softmax_net("LogSoftmax"),
        "hidden_softmax": m.mul_after_softmax_net(),
        "sigmoid_head": m.sigmoid_net(),
        "nan_conv_weight": m.nonfinite_weight_net("conv", float("nan")),
        "inf_conv_weight": m.nonfinite_weight_net("conv", float("inf")),
        "nan_fc_weight": m.nonfinite_weight_net("fc", float("nan")),
        "nan_bias": m.nonfinite_weight_net("bias", float("nan")),
        "overflowing_weights": m.classifier(weight=m.weights((4, 3, 3, 3), scale=3e37)),
        "cycle": m.cyclic_net(),
        "opset_6": m.classifier(opset=6),
        "opset_99": m.classifier(opset=99),
        "ir_version_99": m.classifier(ir=99),
        "no_opset": _without_opset(m.classifier()),
        "sin_on_path": m.classifier(middle="Sin", middle_name="sin_node"),
        "custom_domain_op": _custom_domain(m.classifier()),
        "sin_off_path": m.side_branch_net("Sin"),
        "reduce_over_channels": m.reduce_channels_net(),
        "if_on_path": m.if_net(),
        "kernel_larger_than_input": m.classifier(kernel=65, conv={"pads": [0, 0, 0, 0]}),
        "absurd_pads": m.classifier(conv={"pads": [5000, 5000, 5000, 5000]}),
        "negative_pads": m.classifier(conv={"pads": [-40, -40, -40, -40]}),
        "zero_strides": m.classifier(conv={"strides": [0, 0]}),
        "zero_dilations": m.classifier(conv={"dilations": [0, 0]}),
        "group_mismatch": m.classifier(conv={"group": 2}, channels=3, weight=m.weights((4, 1, 3, 3))),
        "weight_channel_mismatch": m.classifier(weight=m.weights((4, 5, 3, 3))),
        "gemm_shape_mismatch": m.classifier(fc=m.weights((7, 10), 1)),
        "transposed_a_gemm": _gemm_trans_a(m.classifier()),
        "duplicate_node_names": m.duplicate_names_net(),
        "unnamed_nodes": m.unnamed_net(),
        "newline_node_name": m.classifier(middle="Sin", middle_name="bad\nname\r\x1b[31m"),
        "deep_chain": m.chain_net(400),
        "initializers_as_inputs": _initializers_as_inputs(m.classifier()),
        "unknown_attribute": _with_attribute(reduce_any),
        "empty_graph": m.model([], [], [], []),
    }


def _without_opset(model: onnx.ModelProto) -> onnx.ModelProto:
    del model.opset_import[:]
    return model


def _custom_domain(model: onnx.ModelProto) -> onnx.ModelProto:
    model.graph.node[1].domain = "com.example"
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    return model


def _gemm_trans_a(model: onnx.ModelProto) -> onnx.ModelProto:
    """transA=1 on a (features, batch) input: a Transpose then Gemm(transA=1)."""
    nodes = list(model.graph.node)
    nodes[4].input[0] = "flat_t"
    nodes[4].attribute.append(helper.make_attribute("transA", 1))
    del model.graph.node[:]
    model.graph.node.extend(nodes[:4] + [helper.make_node("Transpose", ["flat"], ["flat_t"], name="t", perm=[1, 0]), nodes[4]])
    return model


def _initializers_as_inputs(model: onnx.ModelProto) -> onnx.ModelProto:
    """IR 3 style: every initializer is also listed as a graph input."""
    for init in model.graph.initializer:
        model.graph.input.append(helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))
    model.ir_version = 3
    model.opset_import[0].version = 9
    return model


def _with_attribute(model: onnx.ModelProto) -> onnx.ModelProto:
    model.graph.node[1].attribute.append(helper.make_attribute("made_up", 3))
    return model


def _output_kind(kind: str):
    """explanation.json records the explained output's kind of scores as ``kind``."""

    def verify(ctx) -> list[str]:
        record = json.loads((ctx.out / "chelsea" / "explanation.json").read_text(encoding="utf-8"))
        found = record["info"]["output"]["kind"]
        return [] if found == kind else [f"output kind {found!r}, expected {kind!r}"]

    return verify


def build(folder: Path) -> None:
    for name, proto in _models().items():
        (folder / f"{name}.onnx").write_bytes(proto.SerializeToString())


def _explain(name: str, *extra: str) -> tuple[str, ...]:
    return ("explain", f"{{in}}/graphs/{name}.onnx", str(CHELSEA), "--out", "{out}", *extra)


def cases() -> list[Case]:
    refused = {  # name -> fragments of the one line that refuses it, before any image (exit 2)
        "no_outputs": ("no outputs",),
        "no_input": ("no input",),
        "two_inputs": ("2 inputs",),
        "rank2_input": ("rank 2",),
        "rank3_input": ("rank 3",),
        "rank5_input": ("rank 5",),
        "uint8_input": ("uint8",),
        "int64_input": ("int64",),
        "bfloat16_input": ("bfloat16",),
        "zero_size_input": ("0x0",),
        "zero_channel_input": ("0 channels",),
        "two_channel_input": ("2 channels",),
        "four_channel_input": ("4 channels",),
        "eight_channel_input": ("8 channels",),
        "huge_input": ("30000x30000",),
        "wide_input": ("8x100000",),
        "feature_output": ("'conv_out'", "not a class-score vector"),
        "features_then_logits": ("'relu_out'", "--output"),
        "detection_output": ("not a class-score vector",),
        "segmentation_output": ("not a class-score vector",),
        "argmax_output": ("int64",),
        "pairs_output": ("not a class-score vector",),
        "zero_classes": ("no class scores",),
        "identity_output": ("not a class-score vector",),
        "constant_output": ("constant",),
        "nan_conv_weight": ("NaN", "'W'"),
        "inf_conv_weight": ("infinite", "'W'"),
        "nan_fc_weight": ("NaN", "'FC'"),
        "nan_bias": ("NaN", "'FCB'"),
        "cycle": ("cycle",),
        "opset_6": ("opset 6",),
        "opset_99": ("opset",),
        "ir_version_99": ("IR version",),
        "no_opset": ("opset",),
        "sin_on_path": ("unsupported op 'Sin'", "'sin_node'"),
        "custom_domain_op": ("unsupported op 'Relu'", "com.example"),
        "reduce_over_channels": ("'ReduceMax'", "'channel_max'"),
        "if_on_path": ("unsupported op 'If'",),
        "kernel_larger_than_input": ("onnxruntime",),
        "absurd_pads": ("'conv'", "GB"),
        "negative_pads": ("onnxruntime",),
        "zero_strides": ("'conv'", "strides [0, 0]"),
        "zero_dilations": ("'conv'", "dilations [0, 0]"),
        "group_mismatch": ("onnxruntime",),
        "weight_channel_mismatch": ("onnxruntime",),
        "gemm_shape_mismatch": ("onnxruntime",),
        "transposed_a_gemm": ("transA",),
        "newline_node_name": ("unsupported op 'Sin'", "bad\\nname"),
        "empty_graph": ("no graph nodes",),
        "double_model": ("onnxruntime cannot load", "Conv"),
        "unknown_attribute": ("made_up",),
        "duplicate_node_names": ("same node name",),
        "hidden_softmax": ("unsupported op 'Softmax'",),
    }
    explained = (
        "ok",
        "float16_model",
        "pooled_output",
        "symbolic_input",
        "symbolic_spatial",
        "logits_then_features",
        "single_score",
        "rank3_scores",
        "softmax_head",
        "log_softmax_head",
        "sigmoid_head",
        "sin_off_path",
        "unnamed_nodes",
        "deep_chain",
        "initializers_as_inputs",
    )
    fast = {
        "no_outputs",
        "uint8_input",
        "two_channel_input",
        "huge_input",
        "segmentation_output",
        "detection_output",
        "nan_conv_weight",
        "reduce_over_channels",
        "group_mismatch",
        "absurd_pads",
        "ok",
        "softmax_head",
        "hidden_softmax",
        "duplicate_node_names",
        "features_then_logits",
        "newline_node_name",
    }
    out: list[Case] = []
    for name, fragments in refused.items():
        out.append(Case(f"graphs/{name}", fails(BAD_INPUT, *fragments, absent=("chelsea",)), _explain(name), fast=name in fast))
    for name in explained:
        out.append(Case(f"graphs/{name}", ok(*OUTPUTS), _explain(name), fast=name in fast))
    out += [
        Case("graphs/batch_two_is_filled_with_a_zero_row", ok(*OUTPUTS), _explain("batch_two")),
        Case("graphs/batch_two_refuses_ten_crops", fails(BAD_INPUT, "fixed batch of 2"), _explain("batch_two", "--crops", "10")),
        Case("graphs/overflowing_weights_fail_per_image", fails(ITEM_FAILED, "not finite"), _explain("overflowing_weights")),
        Case("graphs/output_named", ok(*OUTPUTS), _explain("features_then_logits", "--output", "logits"), fast=True),
        Case("graphs/output_unknown", fails(BAD_INPUT, "'nope'", "not an output"), _explain("ok", "--output", "nope")),
        Case(
            "graphs/feature_output_forced",
            ok("chelsea/overlay.png", stderr=("fixtrace: warning:",)),
            _explain("feature_output", "--any-output"),
        ),
        Case(
            "graphs/segmentation_forced_class",
            ok("chelsea/overlay.png", stderr=("fixtrace: warning:",)),
            _explain("segmentation_output", "--any-output", "--class", "5000"),
        ),
        Case("graphs/gradcam_on_float16", ok(*OUTPUTS), _explain("float16_model", "--method", "gradcam")),
        Case(
            "graphs/saliency_on_hidden_softmax",
            ok(*OUTPUTS),
            _explain("hidden_softmax", "--method", "saliency"),
            verify=_output_kind("probabilities"),
        ),
        Case("graphs/sigmoid_scores", ok(*OUTPUTS), _explain("sigmoid_head"), verify=_output_kind("sigmoid")),
        Case("graphs/softmax_scores", ok(*OUTPUTS), _explain("softmax_head"), verify=_output_kind("probabilities")),
        Case(
            "graphs/info_on_segmentation",
            fails(BAD_INPUT, "not a class-score vector"),
            ("info", "{in}/graphs/segmentation_output.onnx"),
        ),
        Case("graphs/layers_on_huge_input", fails(BAD_INPUT, "30000x30000"), ("layers", "{in}/graphs/huge_input.onnx")),
        Case("graphs/layers_on_no_outputs", fails(BAD_INPUT, "no outputs"), ("layers", "{in}/graphs/no_outputs.onnx")),
    ]
    return out
