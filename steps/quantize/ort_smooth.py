"""SmoothQuant on an ONNX graph: scale activation channels down and weight rows up, exactly.

ONNX Runtime's own SmoothQuant option needs Intel neural-compressor (not in our stack), so the
transform is done here. For each activation tensor feeding weight MatMuls we measure the
per-channel max |X| on calibration data, take s = max|X|^a / max|W_row|^(1-a) over all MatMuls
sharing that input, multiply the weight rows by s and divide the activation by s: folded into
the producing LayerNormalization's scale and bias when that node feeds only these MatMuls (free at
run time), otherwise through one inserted Mul. Outputs are unchanged up to float rounding.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

from modelpress.steps.quantize.ort_graph import WeightMatMul, reduce_intermediates, weight_matmuls

if TYPE_CHECKING:
    import numpy as np
    import onnx

    from modelpress.tasks import Batch


def activation_absmax(model: onnx.ModelProto, names: list[str], batches: list[Batch],
                      check=None) -> dict[str, np.ndarray]:
    import numpy as np

    maxima: dict[str, np.ndarray] = {}

    def reduce(name: str, value: np.ndarray) -> None:
        channel_max = np.abs(value.reshape(-1, value.shape[-1])).max(0)
        maxima[name] = channel_max if name not in maxima else np.maximum(maxima[name], channel_max)

    reduce_intermediates(model, names, batches, reduce, check)
    return maxima


def smooth_graph(model: onnx.ModelProto, batches: list[Batch], alpha: float,
                 exclude: set[str], check=None) -> tuple[onnx.ModelProto, int]:
    """(smoothed copy of ``model``, number of activation tensors smoothed)."""
    import copy

    import numpy as np

    model = copy.deepcopy(model)
    groups: dict[str, list[WeightMatMul]] = defaultdict(list)
    for mm in weight_matmuls(model, exclude):
        groups[mm.activation].append(mm)
    absmax = activation_absmax(model, list(groups), batches, check)
    inits = {i.name: i for i in model.graph.initializer}
    for activation, mms in groups.items():
        weights = {mm: mm.weight_kn(inits) for mm in mms}
        w_max = np.max([np.abs(w).max(1) for w in weights.values()], axis=0)
        x_max = absmax[activation]
        s = np.where(x_max > 0, np.maximum(x_max, 1e-5) ** alpha / np.maximum(w_max, 1e-5) ** (1 - alpha), 1.0)
        s = np.maximum(s, 1e-5).astype("float32")
        for mm, w in weights.items():
            mm.store_kn(inits, w * s[:, None])
        if not _fold_into_layernorm(model, activation, {mm.node for mm in mms}, s, inits):
            _insert_mul(model, activation, {mm.node for mm in mms}, s)
    return model, len(groups)


def _fold_into_layernorm(model: onnx.ModelProto, activation: str, consumers: set[str],
                         s: np.ndarray, inits: dict) -> bool:
    from onnx import numpy_helper

    producer = next((n for n in model.graph.node if activation in n.output), None)
    if producer is None or producer.op_type != "LayerNormalization" or len(producer.input) < 3:
        return False
    users = {n.name for n in model.graph.node if activation in n.input}
    shared = sum(producer.input[1] in n.input or producer.input[2] in n.input for n in model.graph.node)
    outputs = {o.name for o in model.graph.output}
    if users != consumers or activation in outputs or shared > 1 or any(
            producer.input[i] not in inits for i in (1, 2)):
        return False
    for i in (1, 2):  # gamma and beta both scale with the output
        init = inits[producer.input[i]]
        init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) / s, init.name))
    return True


def _insert_mul(model: onnx.ModelProto, activation: str, consumers: set[str], s: np.ndarray) -> None:
    from onnx import helper, numpy_helper

    scale_name, out_name = f"{activation}_smooth_scale", f"{activation}_smoothed"
    model.graph.initializer.append(numpy_helper.from_array((1.0 / s).astype("float32"), scale_name))
    mul = helper.make_node("Mul", [activation, scale_name], [out_name], name=f"{activation}_SmoothMul")
    position = 0
    for i, node in enumerate(model.graph.node):
        if activation in node.output:
            position = i + 1
        if node.name in consumers:
            node.input[0] = out_name
    model.graph.node.insert(position, mul)  # topological: right after the producer
