"""quantize (onnxruntime): every scheme round-trips through save/load; SmoothQuant is exact in float."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from modelpress.steps.quantize import QuantizeConfig, quantize
from modelpress.tasks.evaluation import onnx_runner, onnx_session

SCHEMES = {
    "dynamic-per-channel": {},
    "dynamic-per-tensor-asym": {"granularity": "per-tensor", "symmetric": False},
    "static-minmax": {"activations": "static"},
    "static-percentile": {"activations": "static", "calibration": {"method": "percentile"}},
    "static-entropy-smoothquant": {"activations": "static", "calibration": {"method": "entropy"},
                                       "smoothquant": {"alpha": 0.5}},
    "int4-g32-weight-only": {"bits": 4, "granularity": "per-group", "group_size": 32, "activations": "none"},
    "fp16": {"dtype": "fp16"},
}


def _embedding(graph, batch, task):
    return onnx_runner(onnx_session(graph), task)(batch)[1]


def _cosine(a, b):
    return float(((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).mean())


@pytest.mark.parametrize("name", list(SCHEMES))
def test_scheme_round_trips(name, exported, context, digits_frame, task, tmp_path):
    config = QuantizeConfig(**{"calibration": {"progress": False}, **SCHEMES[name]})
    quantized = quantize(exported, config, context)
    batch = task.encode(digits_frame[digits_frame.split == "eval"].iloc[:64])
    out = _embedding(quantized, batch, task)
    assert _cosine(out, _embedding(exported, batch, task)) > 0.98
    onnx.save(quantized, tmp_path / "q.onnx")
    assert np.array_equal(_embedding(onnx.load(tmp_path / "q.onnx"), batch, task), out)
    ops = {n.op_type for n in quantized.graph.node}
    expected = {"fp16": "Cast", "int4-g32-weight-only": "MatMulNBits"}.get(
        name, "DequantizeLinear" if "static" in name else "MatMulInteger")
    assert expected in ops, ops
    assert context.report["size_mb_after"] < context.report["size_mb_before"]


def test_static_quantizes_only_weight_matmuls(exported, context):
    quantized = quantize(exported, QuantizeConfig(activations="static", calibration={"progress": False}), context)
    producers = {o: n.op_type for n in quantized.graph.node for o in n.output}
    for node in quantized.graph.node:
        if node.op_type == "MatMul":
            assert producers.get(node.input[1]) == "DequantizeLinear"  # weights are QDQ
    assert set(context.report["layer_precision"].values()) == {"int8-per-channel-static"}


def test_static_qdq_keeps_matmul_outputs_and_other_consumers_float(exported, context):
    """Only the quantized MatMuls read DequantizeLinear outputs: a MatMul's output is never
    re-quantized and the LayerNorm / residual paths stay float. Either would cost fidelity (MiniLM
    cosine 0.93 instead of 0.99) and leave Q/DQ pairs ORT cannot fuse into MatMulIntegerToFloat."""
    quantized = quantize(exported, QuantizeConfig(activations="static", calibration={"progress": False}), context)
    producers = {o: n for n in quantized.graph.node for o in n.output}
    for node in quantized.graph.node:
        if node.op_type == "QuantizeLinear":
            assert producers[node.input[0]].op_type not in ("MatMul", "Gemm"), node.name
        for name in node.input:
            source = producers.get(name)
            if source is not None and source.op_type == "DequantizeLinear" and node.op_type != "QuantizeLinear":
                assert node.op_type in ("MatMul", "Gemm", "Gather"), (node.op_type, node.name)


def test_smoothquant_graph_is_exact_in_float(exported, context, task, digits_frame):
    from modelpress.steps.quantize.calibration import calibration_batches
    from modelpress.steps.quantize.config import Calibration
    from modelpress.steps.quantize.onnxruntime_stage import graph_feeds
    from modelpress.steps.quantize.ort_smooth import smooth_graph

    batches = graph_feeds(exported, task, calibration_batches(context, Calibration(), "quantize"))
    smoothed, count = smooth_graph(exported, batches, 0.5, set())
    assert count == 4  # inputs of inp, up (after LayerNorm: folded), down, head
    ops = [n.op_type for n in smoothed.graph.node]
    assert ops.count("Mul") - [n.op_type for n in exported.graph.node].count("Mul") == 3  # LN one folded
    batch = task.encode(digits_frame.iloc[:32])
    assert np.allclose(_embedding(smoothed, batch, task), _embedding(exported, batch, task), rtol=1e-4, atol=1e-4)


def test_mixed_precision_reaches_target(exported, context):
    config = QuantizeConfig(activations="static", granularity="per-tensor", calibration={"progress": False},
                            mixed_precision={"min_cosine": 0.999999, "max_float_share": 1.0})
    quantize(exported, config, context)
    report = context.report
    kept = [n for n, p in report["layer_precision"].items() if p == "fp32"]
    assert report["fidelity_target_met"] and kept
    assert min(report["sensitivity"][n] for n in kept) >= max(
        (v for n, v in report["sensitivity"].items() if n not in kept), default=0.0)


def test_gemm_graphs_are_smoothed_and_reported(trained_net, task, digits_frame, context):
    """2-D activations export Linear as Gemm(transB=1): SmoothQuant and the report handle it too."""
    from modelpress.deploy.onnx_export import export_onnx
    from modelpress.steps.quantize.calibration import calibration_batches
    from modelpress.steps.quantize.config import Calibration
    from modelpress.steps.quantize.onnxruntime_stage import graph_feeds
    from modelpress.steps.quantize.ort_smooth import smooth_graph

    class Flat(type(trained_net)):
        def forward(self, pixels):
            features = self.down(torch.nn.functional.gelu(self.up(self.norm(self.inp(pixels.flatten(1))))))
            return self.head(features), features

    flat = Flat()
    flat.load_state_dict(trained_net.state_dict())
    graph = export_onnx(flat.eval(), task, digits_frame.iloc[:4])
    assert "Gemm" in {n.op_type for n in graph.graph.node}
    batches = graph_feeds(graph, task, calibration_batches(context, Calibration(), "quantize"))
    smoothed, count = smooth_graph(graph, batches, 0.5, set())
    batch = task.encode(digits_frame.iloc[:32])
    assert count == 4
    assert np.allclose(_embedding(smoothed, batch, task), _embedding(graph, batch, task), rtol=1e-4, atol=1e-4)
    quantize(graph, QuantizeConfig(activations="static", calibration={"progress": False}), context)
    assert len(context.report["layer_precision"]) == 4


@pytest.mark.parametrize("scheme", [{}, {"granularity": "per-tensor"}, {"activations": "static"}])
def test_s8_weights_cannot_saturate_on_cpus_without_vnni(exported, context, scheme):
    """x86 without VNNI adds two u8*s8 products in a saturating int16 (VPMADDUBSW): s8 weights must
    stay within 7 bits (2*255*64 < 32767), or the graph is wrong there and right on the CPU that
    quantized it. Checked on the weights, so it holds whatever CPU runs this test."""
    config = QuantizeConfig(**{"calibration": {"progress": False}, **scheme})
    quantized = quantize(exported, config, context)
    weights = [onnx.numpy_helper.to_array(i) for i in quantized.graph.initializer
               if i.data_type == onnx.TensorProto.INT8]
    assert weights and max(int(np.abs(w.astype(np.int32)).max()) for w in weights) <= 64
