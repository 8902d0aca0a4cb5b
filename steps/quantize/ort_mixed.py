"""Mixed precision for the onnxruntime backend: which weight MatMuls stay float.

Sensitivity of a MatMul = relative error of ``X @ W`` when W is quantized as configured and X as a
u8 per-tensor activation, on real calibration inputs of that node. Re-quantizing the graph once
per candidate layer would cost minutes per layer; this proxy costs one float pass. The ranked
layers are then put back in float 1, 2, 4, 8 … at a time, each time re-quantizing and measuring
the end-to-end output cosine on the calibration rows, until the recipe's target holds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from modelpress.steps.quantize.ort_graph import reduce_intermediates, weight_matmuls
from modelpress.tasks.evaluation import onnx_runner, onnx_session

if TYPE_CHECKING:
    import numpy as np
    import onnx

    from modelpress.steps.quantize.config import QuantizeConfig
    from modelpress.tasks import Batch

SAMPLE_ROWS = 256


def node_precisions(model: onnx.ModelProto, config: QuantizeConfig, exclude: list[str]) -> dict[str, str]:
    if config.dtype == "fp16":
        label = "fp16"
    elif config.bits == 4:
        label = f"int4-g{config.group_size}-weight-only"
    else:
        label = f"int8-{config.granularity}-{config.activations}"
    skip = set(exclude)
    return {mm.node: "fp32" if mm.node in skip else label for mm in weight_matmuls(model)}


def _fake_quant(x: np.ndarray, low: float, high: float, levels: int) -> np.ndarray:
    import numpy as np

    scale = max(high - low, 1e-12) / levels
    zero = np.round(-low / scale)
    return (np.clip(np.round(x / scale) + zero, 0, levels) - zero) * scale


def sensitivity(model: onnx.ModelProto, config: QuantizeConfig, batches: list[Batch],
                exclude: list[str]) -> dict[str, float]:
    import numpy as np

    mms = weight_matmuls(model, set(exclude))
    inits = {i.name: i for i in model.graph.initializer}
    rows: dict[str, list] = {}

    def keep(name: str, value: np.ndarray) -> None:
        kept = rows.setdefault(name, [])
        if sum(len(r) for r in kept) < SAMPLE_ROWS:
            kept.append(value.reshape(-1, value.shape[-1])[:SAMPLE_ROWS])

    reduce_intermediates(model, sorted({mm.activation for mm in mms}), batches, keep)
    scores = {}
    for mm in mms:
        x = np.concatenate(rows[mm.activation])
        w = mm.weight_kn(inits)
        axis_max = np.abs(w).max(0, keepdims=True) if config.granularity == "per-channel" else np.abs(w).max()
        w_scale = np.maximum(axis_max, 1e-12) / 127.0
        w_q = np.clip(np.round(w / w_scale), -127, 127) * w_scale
        x_q = _fake_quant(x, min(float(x.min()), 0.0), max(float(x.max()), 0.0), 255)
        ref = x @ w
        scores[mm.node] = float(np.linalg.norm(x_q @ w_q - ref)) / max(float(np.linalg.norm(ref)), 1e-12)
    return scores


def output_cosine(reference: onnx.ModelProto, candidate: onnx.ModelProto, batches: list[Batch]) -> float:
    import numpy as np

    ref_run, cand_run = onnx_runner(onnx_session(reference)), onnx_runner(onnx_session(candidate))
    cosines = []
    for batch in batches:
        a, b = ref_run(batch)[1], cand_run(batch)[1]
        a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
        cosines.append((a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12))
    return float(np.concatenate(cosines).mean())


def keep_sensitive_float(float_model: onnx.ModelProto, source: onnx.ModelProto, quantized: onnx.ModelProto,
                         config: QuantizeConfig, batches: list[Batch], exclude: list[str],
                         requantize: Callable[[list[str]], onnx.ModelProto],
                         report: dict[str, Any]) -> tuple[onnx.ModelProto, list[str]]:
    """(final graph, node names kept float) after growing the float set until the target holds."""
    assert config.mixed_precision is not None
    target = config.mixed_precision.min_cosine
    scores = sensitivity(source, config, batches, exclude)
    ranked = sorted(scores, key=lambda node: scores[node], reverse=True)
    limit = int(config.mixed_precision.max_float_share * len(ranked))
    kept: list[str] = []
    cosine = output_cosine(float_model, quantized, batches)
    while cosine < target and len(kept) < limit:
        kept += ranked[len(kept): min(limit, max(1, 2 * len(kept)))]
        quantized = requantize(exclude + kept)
        cosine = output_cosine(float_model, quantized, batches)
    report.update(sensitivity={k: round(v, 5) for k, v in scores.items()},
                  calibration_cosine=round(cosine, 5), fidelity_target_met=cosine >= target)
    return quantized, kept
