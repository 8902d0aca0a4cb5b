"""Measurements shared by evaluation, the gate and the benchmarks.

Quality is measured on the eval split; latency on one fixed-shape batch, with the baseline
and the candidate timed interleaved in one process so machine noise hits both alike. Beside
the metrics, the per-row values behind them are kept as :class:`Samples` (1/0 per row for
accuracy and agreement, predicted classes for macro F1, one timing per interleaved round for
latency), so the gate can put a paired interval on each difference.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from modelpress.core.handoffs import Samples
from modelpress.core.intervals import paired_interval

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


def interleaved_timings(runs: dict[str, Callable[[Batch], Any]], batch: Batch, repeats: int = 20,
                        warmup: int = 3) -> dict[str, list[float]]:
    """Milliseconds per round per runner, alternating runners each round (round i of each runner
    saw the same moment of the machine: the rounds are paired)."""
    for _ in range(warmup):
        for run in runs.values():
            run(batch)
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run(batch)
            samples[name].append((time.perf_counter() - start) * 1e3)
    return samples


def latency_summary(timings: list[float]) -> dict[str, float]:
    import numpy as np

    return {"latency_ms": float(np.median(timings)), "latency_p95_ms": float(np.percentile(timings, 95))}


def interleaved_latency(runs: dict[str, Callable[[Batch], Any]], batch: Batch,
                        repeats: int = 20, warmup: int = 3) -> dict[str, dict[str, float]]:
    """p50/p95 milliseconds per runner, alternating runners each round."""
    return {name: latency_summary(s) for name, s in interleaved_timings(runs, batch, repeats, warmup).items()}


#: the candidate/baseline latency ratio is timed until its 95 % interval is within ±this share
#: of the ratio (or MAX_ROUNDS, or EXTRA_SECONDS spent on added rounds): on a quiet machine the
#: first rounds suffice, on a busy one a wider interval would leave latency bounds inconclusive
RATIO_PRECISION = 0.05
MAX_ROUNDS = 100
EXTRA_SECONDS = 30.0


def paired_timings(runs: dict[str, Callable[[Batch], Any]], batch: Batch,
                   repeats: int = 20) -> dict[str, list[float]]:
    """Interleaved rounds of ``baseline`` and ``candidate``, more of them (``repeats`` at a time,
    up to MAX_ROUNDS and EXTRA_SECONDS) while the interval on the median ratio is wider than
    RATIO_PRECISION."""
    timings = interleaved_timings(runs, batch, repeats)
    deadline = time.perf_counter() + EXTRA_SECONDS
    while len(timings["baseline"]) < MAX_ROUNDS and time.perf_counter() < deadline:
        ratio = paired_interval(Samples(statistic="median", baseline=timings["baseline"],
                                        candidate=timings["candidate"]), lambda c, b: c / b, resamples=500)
        if ratio.high - ratio.low <= 2 * RATIO_PRECISION * abs(ratio.estimate):
            break
        more = interleaved_timings(runs, batch, min(repeats, MAX_ROUNDS - len(timings["baseline"])), warmup=0)
        timings = {name: timings[name] + more[name] for name in timings}
    return timings


def model_size_mb(model: onnx.ModelProto) -> float:
    return model.ByteSize() / 1e6


def row_samples(logits: np.ndarray, embeddings: np.ndarray, ref_logits: np.ndarray,
                ref_embeddings: np.ndarray, labels: np.ndarray) -> dict[str, Samples]:
    """Per-row values behind accuracy, macro F1, agreement and cosine (the reference = baseline)."""
    import numpy as np

    predicted, reference = logits.argmax(-1), ref_logits.argmax(-1)
    a = embeddings.reshape(len(embeddings), -1).astype("float64")
    b = ref_embeddings.reshape(len(ref_embeddings), -1).astype("float64")
    cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    ones = [1.0] * len(labels)
    return {
        "accuracy": Samples(statistic="mean", baseline=(reference == labels).astype(float).tolist(),
                            candidate=(predicted == labels).astype(float).tolist()),
        "f1": Samples(statistic="macro_f1", baseline=reference.astype(float).tolist(),
                      candidate=predicted.astype(float).tolist(), labels=labels.astype(int).tolist()),
        "agreement": Samples(statistic="mean", baseline=ones,
                             candidate=(predicted == reference).astype(float).tolist()),
        "cosine": Samples(statistic="mean", baseline=ones, candidate=cos.tolist()),
    }


def compare_onnx_paired(baseline: onnx.ModelProto, candidate: onnx.ModelProto, task: Task,
                        eval_frame: pd.DataFrame, timing_batch_size: int = 32,
                        repeats: int = 20) -> tuple[dict[str, dict[str, float]], dict[str, Samples]]:
    """Every gate metric for baseline and candidate, both run in ONNX Runtime, and the per-row
    (per-round, for latency) values behind the metrics that have them."""
    runs = {"baseline": onnx_runner(onnx_session(baseline), task),
            "candidate": onnx_runner(onnx_session(candidate), task)}
    ref_logits, ref_emb, labels = predict(runs["baseline"], task, eval_frame)
    logits, emb, _ = predict(runs["candidate"], task, eval_frame)
    rounds = paired_timings(runs, task.timing_batch(eval_frame, timing_batch_size), repeats)
    report = {
        "baseline": {**quality(ref_logits, labels), "agreement": 1.0, "cosine": 1.0,
                     "size_mb": model_size_mb(baseline), **latency_summary(rounds["baseline"])},
        "candidate": {**quality(logits, labels), **fidelity(logits, emb, ref_logits, ref_emb),
                      "size_mb": model_size_mb(candidate), **latency_summary(rounds["candidate"])},
    }
    report["candidate"]["eval_rows"] = report["baseline"]["eval_rows"] = float(len(labels))
    samples = {**row_samples(logits, emb, ref_logits, ref_emb, labels),
               "latency_ms": Samples(statistic="median", baseline=rounds["baseline"], candidate=rounds["candidate"])}
    return report, samples


def compare_onnx(baseline: onnx.ModelProto, candidate: onnx.ModelProto, task: Task,
                 eval_frame: pd.DataFrame, timing_batch_size: int = 32,
                 repeats: int = 20) -> dict[str, dict[str, float]]:
    """Every gate metric for baseline and candidate, both run in ONNX Runtime."""
    return compare_onnx_paired(baseline, candidate, task, eval_frame, timing_batch_size, repeats)[0]
