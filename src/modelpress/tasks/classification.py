"""What the classification tasks share: labels, cross-entropy, their metrics, ORT evaluation."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from modelpress.core.errors import ModelpressError
from modelpress.core.handoffs import Evaluation
from modelpress.core.metric import Metric
from modelpress.tasks.base import Task
from modelpress.tasks.evaluation import ONNX_RUNTIME, compare_onnx_paired
from modelpress.tasks.memory import add_peak_memory

if TYPE_CHECKING:
    import onnx
    import pandas as pd
    import torch


CLASSIFICATION_METRICS = (  # in the order the summary prints them
    Metric("size_mb", "size (MB)", False, fmt="{:.2f}"),
    Metric("accuracy", "accuracy", True, 0.0, 1.0),
    Metric("f1", "macro F1", True, 0.0, 1.0),
    Metric("agreement", "top-1 agreement", True, 0.0, 1.0),
    Metric("cosine", "embedding cosine", True, -1.0, 1.0),
    Metric("latency_ms", "latency p50 (ms)", False, fmt="{:.2f}"),
    Metric("latency_p95_ms", "latency p95 (ms)", False, fmt="{:.2f}"),
    Metric("peak_memory_mb", "peak memory (MB)", False, fmt="{:.1f}"),
)
#: latency is timed on one fixed batch of this many rows
TIMING_BATCH = 32


class ClassificationTask(Task):
    metrics: ClassVar[tuple[Metric, ...]] = CLASSIFICATION_METRICS
    primary_metric: ClassVar[str] = "accuracy"

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        import torch.nn.functional as F

        return F.cross_entropy(logits.float(), labels)

    def check_model(self, model: torch.nn.Module, frame: pd.DataFrame, where: str) -> None:
        """The model must give one logit per label (a mismatch would only show as nonsense)."""
        import torch

        example = self.example(frame, 2)
        try:
            self.binding(model, example)
        except ModelpressError as exc:
            raise ModelpressError(f"{where}: {exc}") from None
        labels = self.spec.labels
        if not labels:
            return
        try:
            with torch.no_grad():  # not inference_mode: a TorchScript module once run with autograd fails in it
                logits, _ = self.forward(model.eval(), example)
        except Exception as exc:  # noqa: BLE001 -- any failure here is the user's model meeting our inputs
            raise ModelpressError(f"{where}: the model fails on this data's inputs "
                                  f"({', '.join(self.input_names)}): {type(exc).__name__}: {exc}"
                                  .splitlines()[0]) from None
        if logits.ndim != 2 or logits.shape[-1] != len(labels):
            raise ModelpressError(f"{where}: the model outputs {tuple(logits.shape[1:])} per row but the data "
                                  f"has {len(labels)} labels ({', '.join(labels)}); the output size must "
                                  "equal the number of labels")

    def evaluate(self, baseline: onnx.ModelProto, candidate: onnx.ModelProto,
                 eval_frame: pd.DataFrame) -> Evaluation:
        """Every metric for baseline and candidate, both in ONNX Runtime, latency interleaved; the
        per-row values behind accuracy, F1, agreement, cosine and latency kept for the gate."""

        report, samples = compare_onnx_paired(baseline, candidate, self, eval_frame, timing_batch_size=TIMING_BATCH)
        report = add_peak_memory(report, {"baseline": baseline, "candidate": candidate},
                                 self.timing_batch(eval_frame, TIMING_BATCH), self)
        # Besides the declared metrics the report keeps diagnostics (cosine_min, max_abs_diff).
        return Evaluation(task=self.name, eval_rows=len(eval_frame),
                          baseline={k: float(v) for k, v in report["baseline"].items() if k != "eval_rows"},
                          candidate={k: float(v) for k, v in report["candidate"].items() if k != "eval_rows"},
                          samples=samples, runtimes={"baseline": ONNX_RUNTIME, "candidate": ONNX_RUNTIME})
