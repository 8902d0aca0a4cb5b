"""Measurements shared by evaluation, the gate and the benchmarks.

Quality is measured on the eval split; latency on one fixed-shape batch, with the baseline
and the candidate timed interleaved in one process so machine noise hits both alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import onnx
    import onnxruntime as ort
    import pandas as pd
    import torch

    from modelpress.tasks import Batch, Task

Outputs = tuple["np.ndarray", "np.ndarray"]  # logits, embeddings
ONNX_RUNTIME = "ONNX Runtime, CPUExecutionProvider"  # what onnx_session runs: the runtime the graph ships to


def onnx_session(model: onnx.ModelProto | bytes, threads: int | None = None) -> ort.InferenceSession:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    payload = model if isinstance(model, bytes) else model.SerializeToString()
    return ort.InferenceSession(payload, options, providers=["CPUExecutionProvider"])


def graph_input_names(model: onnx.ModelProto) -> list[str]:
    """A graph's inputs in order (initializers listed as inputs by old exporters excluded)."""
    initializers = {t.name for t in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in initializers]


def onnx_runner(session: ort.InferenceSession, task: Task | None = None) -> Callable[[Batch], Outputs]:
    """Runs a graph on a task's batches (fed by the task's binding), or, without a task, on feed
    dicts already keyed by the graph's input names."""
    names = [i.name for i in session.get_inputs()]

    def run(batch: Batch) -> Outputs:
        if task is None:
            feeds = {k: v for k, v in batch.items() if k in names}
        else:
            feeds = task.graph_binding(names, batch).feeds(batch)
        outputs = session.run(None, feeds)
        return outputs[0], outputs[1] if len(outputs) > 1 else outputs[0]

    return run


def torch_runner(model: torch.nn.Module, task: Task) -> Callable[[Batch], Outputs]:
    import torch

    model.eval()

    def run(batch: Batch) -> Outputs:
        # Not inference_mode, and detached: a TorchScript module once run with autograd fails in
        # inference mode, and its executor may hand back outputs that require grad under no_grad.
        with torch.no_grad():
            logits, embedding = task.forward(model, batch)
        return logits.detach().float().numpy(), embedding.detach().float().numpy()

    return run


def predict(run: Callable[[Batch], Outputs], task: Task, frame: pd.DataFrame,
            batch_size: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Logits, embeddings and labels over ``frame``."""
    import numpy as np

    logits, embeddings, labels = [], [], []
    for batch, y in task.batches(frame, batch_size):
        out_logits, out_embedding = run(batch)
        logits.append(out_logits)
        embeddings.append(out_embedding)
        labels.append(y)
    return np.concatenate(logits), np.concatenate(embeddings), np.concatenate(labels)


def quality(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import f1_score

    predicted = logits.argmax(-1)
    return {"accuracy": float((predicted == labels).mean()),
            "f1": float(f1_score(labels, predicted, average="macro"))}


def fidelity(logits: np.ndarray, embeddings: np.ndarray, ref_logits: np.ndarray,
             ref_embeddings: np.ndarray) -> dict[str, float]:
    """Agreement of top-1 predictions and cosine of embeddings versus a reference model."""
    import numpy as np

    a = embeddings.reshape(len(embeddings), -1).astype("float64")
    b = ref_embeddings.reshape(len(ref_embeddings), -1).astype("float64")
    cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    return {"agreement": float((logits.argmax(-1) == ref_logits.argmax(-1)).mean()),
            "cosine": float(cos.mean()), "cosine_min": float(cos.min()),
            "max_abs_diff": float(np.abs(logits - ref_logits).max())}


def interleaved_latency(runs: dict[str, Callable[[Batch], Any]], batch: Batch,
                        repeats: int = 20, warmup: int = 3) -> dict[str, dict[str, float]]:
    """p50/p95 milliseconds per runner, alternating runners each round."""
    import numpy as np

    for _ in range(warmup):
        for run in runs.values():
            run(batch)
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run(batch)
            samples[name].append((time.perf_counter() - start) * 1e3)
    return {name: {"latency_ms": float(np.median(s)), "latency_p95_ms": float(np.percentile(s, 95))}
            for name, s in samples.items()}


def model_size_mb(model: onnx.ModelProto) -> float:
    return model.ByteSize() / 1e6


def compare_onnx(baseline: onnx.ModelProto, candidate: onnx.ModelProto, task: Task,
                 eval_frame: pd.DataFrame, timing_batch_size: int = 32,
                 repeats: int = 20) -> dict[str, dict[str, float]]:
    """Every gate metric for baseline and candidate, both run in ONNX Runtime."""
    runs = {"baseline": onnx_runner(onnx_session(baseline), task),
            "candidate": onnx_runner(onnx_session(candidate), task)}
    ref_logits, ref_emb, labels = predict(runs["baseline"], task, eval_frame)
    logits, emb, _ = predict(runs["candidate"], task, eval_frame)
    timing = interleaved_latency(runs, task.timing_batch(eval_frame, timing_batch_size), repeats)
    report = {
        "baseline": {**quality(ref_logits, labels), "agreement": 1.0, "cosine": 1.0,
                     "size_mb": model_size_mb(baseline), **timing["baseline"]},
        "candidate": {**quality(logits, labels), **fidelity(logits, emb, ref_logits, ref_emb),
                      "size_mb": model_size_mb(candidate), **timing["candidate"]},
    }
    report["candidate"]["eval_rows"] = report["baseline"]["eval_rows"] = float(len(labels))
    return report
