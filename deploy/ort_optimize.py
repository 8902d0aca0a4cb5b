"""Offline ONNX Runtime graph optimization, checked for parity before it ships.

ORT optimizes every graph when a session opens; doing it once at pull time moves that cost
out of pod start-up. Only the "basic" level is written offline: ORT documents the extended
and layout levels as tied to the execution provider and hardware they ran on, and a model
repository is pulled once and may be served by Triton on another machine.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from modelpress.core.errors import ModelpressError

if TYPE_CHECKING:
    import onnx

PARITY_ATOL = 1e-4
_NUMPY = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
          "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(bool)": np.bool_,
          "tensor(uint8)": np.uint8, "tensor(int8)": np.int8}


def optimize_offline(model: onnx.ModelProto) -> tuple[onnx.ModelProto, dict[str, float]]:
    """The basic-level optimized graph and its max abs difference to the input graph."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        source, target = Path(tmp) / "in.onnx", Path(tmp) / "out.onnx"
        onnx.save(model, str(source))
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(target)
        ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
        optimized = onnx.load(str(target))
    report = {"max_abs": _max_abs_difference(model, optimized),
              "nodes_before": len(model.graph.node), "nodes_after": len(optimized.graph.node)}
    if report["max_abs"] > PARITY_ATOL:
        raise ModelpressError(f"ORT offline optimization changed the outputs by {report['max_abs']:.2e} "
                              f"(> {PARITY_ATOL}); serve the unoptimized graph")
    return optimized, report


def _max_abs_difference(a: onnx.ModelProto, b: onnx.ModelProto) -> float:
    import onnxruntime as ort

    sessions = [ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]) for m in (a, b)]
    feeds = _sample_feeds(sessions[0].get_inputs())
    outputs = [s.run(None, feeds) for s in sessions]
    return max((float(np.max(np.abs(x.astype(np.float64) - y.astype(np.float64)))) if x.size else 0.0)
               for x, y in zip(*outputs))


def _sample_feeds(inputs: list[Any]) -> dict[str, np.ndarray]:
    """Deterministic inputs: batch 2, dynamic non-batch axes 8, small non-negative integers
    (valid token ids and masks for text models)."""
    rng = np.random.default_rng(0)
    feeds: dict[str, np.ndarray] = {}
    for node in inputs:
        shape = [2 if i == 0 and not isinstance(d, int) else d if isinstance(d, int) else 8
                 for i, d in enumerate(node.shape)]
        dtype = _NUMPY.get(node.type)
        if dtype is None:
            raise ModelpressError(f"cannot make sample data for input {node.name!r} of type {node.type}")
        if np.issubdtype(dtype, np.integer) or dtype is np.bool_:
            feeds[node.name] = rng.integers(0, 2, size=shape).astype(dtype)
        else:
            feeds[node.name] = rng.random(shape).astype(dtype)
    return feeds
