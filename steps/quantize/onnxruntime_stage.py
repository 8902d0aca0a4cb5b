"""``quantize``: ONNX Runtime quantization of the exported graph (a graph stage).

ONNX Runtime already does the int8 work well (per-channel weights, integer MatMul kernels, QDQ
graphs TensorRT also reads, calibrators for min-max / percentile / entropy), so we configure it
rather than re-implement it: ``quantize_dynamic`` for dynamic activations, ``quantize_static``
(QDQ, u8 activations, calibration through a CalibrationDataReader over the recipe's calibration
split) for static ones, ``MatMulNBitsQuantizer`` for int4 weight-only and the float16 converter
for fp16. Added here: SmoothQuant folding before static calibration (ort_smooth.py) and
sensitivity-driven mixed precision (ort_mixed.py). Per-channel is the default because per-tensor
int8 loses fidelity on MiniLM (cosine 0.93–0.96, benchmarks/RESULTS.md, "Peer baselines").
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelpress.core.registry import register_stage
from modelpress.steps.quantize.calibration import calibration_batches, check_finite, progress
from modelpress.steps.quantize.config import QuantizeConfig
from modelpress.steps.quantize.ort_mixed import keep_sensitive_float, node_precisions
from modelpress.steps.quantize.ort_smooth import smooth_graph
from modelpress.tasks.evaluation import graph_input_names, onnx_runner, onnx_session

if TYPE_CHECKING:
    import onnx

    from modelpress.tasks import Batch, Task
    from modelpress.tasks.context import StageContext

# Without Gather the word-embedding table stays fp32 and a QDQ MiniLM stays ~59 MB
# (benchmarks/RESULTS.md, "Peer baselines").
STATIC_OPERATORS = ["MatMul", "Gemm", "Gather"]
CALIBRATION_METHODS = {"minmax": "MinMax", "percentile": "Percentile", "entropy": "Entropy"}
# Saturation: s8 weights are quantized to 7 bits (ORT's reduce_range). x86 CPUs without VNNI (AVX2, AVX-512
# without VNNI) run u8 x s8 MatMuls with VPMADDUBSW, which adds two u8*s8 products into a
# saturating int16: with full-range s8 weights (every channel reaches +-127 per-channel) 2*255*127
# overflows and the int8 graph silently computes wrong logits (a 6-16-3 MLP: agreement with fp32
# 0.80, logits off by 6.6; with 7-bit weights 1.00, off by 0.1). The file is deployed on CPUs we
# cannot know, so it is made safe on all of them; VNNI CPUs and u8 weights (u8 x u8) never saturate.


def excluded_nodes(model: onnx.ModelProto, patterns: list[str]) -> list[str]:
    names = [node.name for node in model.graph.node]
    chosen: list[str] = []
    for pattern in patterns:
        hits = [n for n in names if re.search(pattern, n)]
        if not hits:
            layers = [n.name for n in model.graph.node if n.op_type in ("MatMul", "Gemm", "Gather", "Conv")]
            raise ValueError(f"quantize.exclude: {pattern!r} matches no node; quantizable nodes: "
                             + ", ".join(layers[:60]) + (" …" if len(layers) > 60 else ""))
        chosen += hits
    return sorted(set(chosen))


@register_stage("quantize", QuantizeConfig, kind="graph",
                summary="ONNX Runtime: int8 dynamic/static QDQ (+SmoothQuant), int4 MatMulNBits, fp16")
def quantize(model: onnx.ModelProto, config: QuantizeConfig, context: StageContext) -> onnx.ModelProto:
    exclude = excluded_nodes(model, config.exclude)
    batches = calibration_batches(context, config.calibration, "quantize") if config.needs_calibration else []
    return quantize_graph(model, config, graph_feeds(model, context.task, batches), exclude, context.report)


def graph_feeds(model: onnx.ModelProto, task: Task, batches: list[Batch]) -> list[Batch]:
    """The task's batches keyed by the graph's input names, bound the way the graph takes them."""

    names = graph_input_names(model)
    return [task.graph_binding(names, batch).feeds(batch) for batch in batches]


def quantize_graph(model: onnx.ModelProto, config: QuantizeConfig, batches: list[Batch],
                   exclude: list[str], report: dict[str, Any]) -> onnx.ModelProto:
    """The pure core (no ZenML, no Task): ``batches`` are ONNX input dicts."""

    if config.dtype == "fp16":
        quantized = _to_fp16(model, exclude)
        report.update(layer_precision=node_precisions(model, config, exclude),
                      size_mb_before=model.ByteSize() / 1e6, size_mb_after=quantized.ByteSize() / 1e6)
        return quantized
    if batches:
        _check_float_model(model, batches)
    source = model
    if config.smoothquant is not None:

        source, smoothed = smooth_graph(model, batches, config.smoothquant.alpha, set(exclude))
        report["smoothed_activations"] = smoothed
    quantized = _quantize_once(source, config, batches, exclude)
    if config.mixed_precision is not None:
        quantized, kept = keep_sensitive_float(model, source, quantized, config, batches, exclude,
                                               lambda extra: _quantize_once(source, config, batches, extra),
                                               report)
        exclude = exclude + kept
    report["layer_precision"] = node_precisions(source, config, exclude)
    report["size_mb_before"] = model.ByteSize() / 1e6
    report["size_mb_after"] = quantized.ByteSize() / 1e6
    report["quantized_nodes"] = sum(1 for n in quantized.graph.node if "Integer" in n.op_type or n.op_type in (
        "DequantizeLinear", "DynamicQuantizeLinear", "MatMulNBits"))
    report["excluded_nodes"] = len(exclude)
    return quantized


def _check_float_model(model: onnx.ModelProto, batches: list[Batch]) -> None:
    """Calibration rows must give finite outputs, or every derived scale would be NaN."""

    run = onnx_runner(onnx_session(model))
    for i, batch in enumerate(batches):
        logits, embedding = run(batch)
        check_finite({"logits": logits, "embedding": embedding}, f"quantize.calibration: batch {i} output")


def _quantize_once(model: onnx.ModelProto, config: QuantizeConfig, batches: list[Batch],
                   exclude: list[str]) -> onnx.ModelProto:
    import onnx

    with tempfile.TemporaryDirectory() as tmp:
        source, target = Path(tmp, "model.onnx"), Path(tmp, "model.q.onnx")
        onnx.save(model, source)
        if config.bits == 4:
            return _int4_weight_only(model, config, exclude)
        if config.activations == "dynamic":
            _dynamic(source, target, config, exclude)
        else:
            _static(source, target, config, batches, exclude, weight_nodes(model))
        return onnx.load(target)


def _dynamic(source: Path, target: Path, config: QuantizeConfig, exclude: list[str]) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        source, target,
        per_channel=config.granularity == "per-channel",
        reduce_range=config.symmetric,  # s8 weights: 7 bits (Saturation, above); u8 x u8 cannot saturate
        weight_type=QuantType.QInt8 if config.symmetric else QuantType.QUInt8,
        nodes_to_exclude=exclude,
        op_types_to_quantize=config.operators,
        extra_options={"MatMulConstBOnly": True},  # only weights, never activation×activation
    )


def weight_nodes(model: onnx.ModelProto) -> list[str]:
    """Nodes with a constant weight. QDQ would otherwise also quantize the attention's
    activation x activation MatMuls (softmax probabilities in u8), which costs fidelity for no size."""
    inits = {i.name for i in model.graph.initializer}
    return [n.name for n in model.graph.node if (n.op_type in ("MatMul", "Gemm", "Conv") and len(n.input) > 1
            and n.input[1] in inits) or (n.op_type == "Gather" and n.input[0] in inits)]


def _static(source: Path, target: Path, config: QuantizeConfig, batches: list[Batch],
            exclude: list[str], nodes: list[str]) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    cal = config.calibration
    # Quantize only what a MatMul reads: its output stays float (ORT fuses DQ→MatMul into
    # MatMulIntegerToFloat) and each quantized input gets its own Q/DQ pair, so residual and
    # LayerNorm consumers of the same tensor keep reading float. Re-quantized MatMul outputs and
    # shared pairs cost MiniLM cosine 0.93 (vs 0.988) and 1.3x the latency of dynamic int8.
    extra: dict[str, Any] = {"MatMulConstBOnly": True, "WeightSymmetric": config.symmetric,
                             "ActivationSymmetric": False, "DedicatedQDQPair": True,
                             "OpTypesToExcludeOutputQuantization": ["MatMul", "Gemm"]}
    if cal.method == "percentile":
        extra["CalibPercentile"] = cal.percentile
    if cal.method != "minmax" and len(batches) > 1 and len(batches[-1][next(iter(batches[-1]))]) != \
            len(batches[0][next(iter(batches[0]))]):
        batches = batches[:-1]  # histogram calibrators stack batches: they must share one shape
    quantize_static(
        source, target, _Reader(batches, cal.progress, str(source)),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=config.operators or STATIC_OPERATORS,
        per_channel=config.granularity == "per-channel",
        reduce_range=True,  # s8 weights under u8 activations: 7 bits (Saturation, above)
        activation_type=QuantType.QUInt8,  # u8 activations: the fast VNNI path (s8 runs at fp32 speed)
        weight_type=QuantType.QInt8,
        nodes_to_quantize=[n for n in nodes if n not in set(exclude)],
        nodes_to_exclude=exclude,
        calibrate_method=getattr(CalibrationMethod, CALIBRATION_METHODS[cal.method]),
        extra_options=extra,
    )


class _Reader:
    """onnxruntime.quantization.CalibrationDataReader over prepared batches, with a progress bar."""

    def __init__(self, batches: list[Batch], show: bool, model_path: str):
        import onnx

        wanted = {i.name for i in onnx.load(model_path, load_external_data=False).graph.input}
        self._batches = [{k: v for k, v in b.items() if k in wanted} for b in batches]
        self._iter = progress(self._batches, show, "calibrate")

    def get_next(self) -> dict | None:
        return next(self._iter, None)

    def rewind(self) -> None:
        self._iter = iter(self._batches)


def _int4_weight_only(model: onnx.ModelProto, config: QuantizeConfig, exclude: list[str]) -> onnx.ModelProto:
    import copy

    from onnxruntime.quantization.matmul_nbits_quantizer import (
        DefaultWeightOnlyQuantConfig,
        MatMulNBitsQuantizer,
    )

    algo = DefaultWeightOnlyQuantConfig(block_size=config.group_size, is_symmetric=config.symmetric,
                                        bits=4)
    quantizer = MatMulNBitsQuantizer(copy.deepcopy(model), bits=4, block_size=config.group_size,
                                     is_symmetric=config.symmetric, nodes_to_exclude=exclude,
                                     algo_config=algo)
    quantizer.process()
    return quantizer.model.model


def _to_fp16(model: onnx.ModelProto, exclude: list[str]) -> onnx.ModelProto:
    import copy

    from onnxruntime.transformers.float16 import convert_float_to_float16

    return convert_float_to_float16(copy.deepcopy(model), keep_io_types=True, node_block_list=exclude)
