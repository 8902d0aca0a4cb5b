"""weight-quantize: every scheme round-trips (quantize → save → load → same outputs), exports QDQ."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from modelpress.steps.quantize import WeightQuantizeConfig, weight_quantize
from modelpress.steps.quantize.modules import Fp8Linear, QuantLinear

SCHEMES = {
    "int8-channel": {"bits": 8},
    "int8-tensor-asym": {"bits": 8, "granularity": "per-tensor", "symmetric": False},
    "int8-g32": {"bits": 8, "granularity": "per-group", "group_size": 32},
    "int4-g32": {"bits": 4, "granularity": "per-group", "group_size": 32},
    "int4-g64-asym-gptq": {"bits": 4, "granularity": "per-group", "group_size": 64, "symmetric": False,
                           "algorithm": "gptq"},
    "int3-g32-gptq": {"bits": 3, "granularity": "per-group", "group_size": 32, "algorithm": "gptq"},
    "int4-g32-asym-gptq-awq-one-pass": {"bits": 4, "granularity": "per-group", "group_size": 32, "symmetric": False,
                                        "algorithm": "gptq", "awq": {}, "gptq": {"sequential": False}},
    "int4-g32-awq-rtn-mse": {"bits": 4, "granularity": "per-group", "group_size": 32, "awq": {"grid": 10},
                             "weight_range": "mse"},
    "int2-g32-asym": {"bits": 2, "granularity": "per-group", "group_size": 32, "symmetric": False},
    "w8a8": {"bits": 8, "activations": "dynamic"},
    "w8a8-smoothquant": {"bits": 8, "activations": "dynamic", "smoothquant": {"alpha": 0.5}},
    "fp8-row": {"dtype": "fp8", "activations": "dynamic"},
    "fp8-tensor-weight-only": {"dtype": "fp8", "granularity": "per-tensor"},
    "fp16": {"dtype": "fp16"},
    "bf16": {"dtype": "bf16"},
}
# loose floors: they catch a broken scheme (cosine ~0), not small numeric differences
MIN_COSINE = {"int2-g32-asym": 0.8, "int3-g32-gptq": 0.95}


def _pixels(frame, task, rows=32):
    return torch.from_numpy(task.encode(frame.iloc[:rows])["pixel_values"].copy())


@pytest.mark.parametrize("name", list(SCHEMES))
def test_scheme_round_trips(name, trained_net, context, digits_frame, task):
    config = WeightQuantizeConfig(**SCHEMES[name], calibration={"progress": False})
    quantized = weight_quantize(trained_net, config, context)
    x = _pixels(digits_frame[digits_frame.split == "eval"], task)
    with torch.inference_mode():
        out = quantized(x)[1]
        ref = trained_net(x)[1]
    assert float(torch.nn.functional.cosine_similarity(out, ref).mean()) > MIN_COSINE.get(name, 0.99)
    assert all(not isinstance(m, torch.nn.Linear) or config.dtype in ("fp16", "bf16")
               for m in quantized.modules()), "every Linear is replaced"

    buffer = io.BytesIO()
    torch.save(quantized, buffer)
    buffer.seek(0)
    reloaded = torch.load(buffer, weights_only=False)
    # state_dict path: a fresh quantization of the float model has the same structure
    fresh = weight_quantize(trained_net, config, context)
    fresh.load_state_dict(quantized.state_dict())
    with torch.inference_mode():
        assert torch.equal(reloaded(x)[1], out)
        assert torch.equal(fresh(x)[1], out)
    assert context.report["size_mb_after"] < context.report["size_mb_before"]


def test_packed_layout_is_the_kernels_one(trained_net, context):
    quantized = weight_quantize(trained_net, WeightQuantizeConfig(
        bits=4, granularity="per-group", group_size=32), context)
    layer = quantized.up
    assert isinstance(layer, QuantLinear)
    assert layer.qweight.dtype == torch.uint8 and layer.qweight.shape == (128, 32)  # K/2 bytes per row
    assert layer.scales.shape == (128, 2) and layer.zeros is None  # symmetric int4: implied zero 8
    assert context.report["layer_precision"]["up"] == "int4-g32-sym-rtn"


def test_fp8_weights_are_e4m3(trained_net, context):
    quantized = weight_quantize(trained_net, WeightQuantizeConfig(dtype="fp8", activations="dynamic"), context)
    assert isinstance(quantized.up, Fp8Linear) and quantized.up.weight_fp8.dtype == torch.float8_e4m3fn
    assert quantized.up.weight_scale.shape == (128, 1)


@pytest.mark.parametrize("name", ["int8-channel", "int4-g32", "int3-g32-gptq", "w8a8-smoothquant",
                                  "int4-g32-awq-rtn-mse"])
def test_onnx_export_carries_qdq(name, trained_net, context, digits_frame, task):
    from modelpress.deploy.onnx_export import check_parity, export_onnx
    from modelpress.tasks.evaluation import onnx_runner, onnx_session

    quantized = weight_quantize(trained_net, WeightQuantizeConfig(
        **SCHEMES[name], calibration={"progress": False}), context)
    graph = export_onnx(quantized, task, digits_frame.iloc[:4])
    ops = [n.op_type for n in graph.graph.node]
    assert ops.count("DequantizeLinear") == 4, ops
    batch = task.encode(digits_frame.iloc[:16])
    onnx_out = onnx_runner(onnx_session(graph), task)(batch)[1]
    with torch.inference_mode():
        # the graph's weights are exactly the stored codes; activations stay float in QDQ weight-only
        layers = {n: m for n, m in quantized.named_modules() if isinstance(m, QuantLinear)}
        reference = trained_net.__class__()
        reference.load_state_dict(trained_net.state_dict())
        for n, m in layers.items():
            reference.get_submodule(n).weight.copy_(m.dequantized_weight())
        expected = reference(torch.from_numpy(batch["pixel_values"].copy()))[1].numpy()
    assert np.allclose(onnx_out, expected, atol=1e-3, rtol=1e-3)
    check_parity(quantized, graph, task, digits_frame.iloc[:64])  # the pipeline's export check passes


def test_mixed_precision_keeps_sensitive_layers_float(trained_net, context):
    config = WeightQuantizeConfig(bits=2, granularity="per-group", group_size=32, symmetric=False,
                                  mixed_precision={"min_cosine": 0.999, "max_float_share": 1.0},
                                  calibration={"progress": False})
    quantized = weight_quantize(trained_net, config, context)
    precision = context.report["layer_precision"]
    kept = [n for n, p in precision.items() if p == "fp32"]
    assert kept and all(isinstance(quantized.get_submodule(n), torch.nn.Linear) for n in kept)
    assert context.report["fidelity_target_met"] and context.report["calibration_cosine"] >= 0.999
    # the layers kept float are the most sensitive ones
    sensitivity = context.report["sensitivity"]
    assert min(sensitivity[n] for n in kept) >= max(
        (v for n, v in sensitivity.items() if n not in kept), default=0.0)
