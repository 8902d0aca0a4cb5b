"""PyTorch → ONNX export with dynamic axes, checked for parity against PyTorch.

One exporter for every module kind (eager, TorchScript, Hugging Face ``PreTrainedModel``): the
graph takes the task's inputs under the model's own argument names, bound the way the task
calls the model (``modelpress.tasks.calling``: ``input_ids``/``attention_mask``/``token_type_ids``
for a BERT, ``pixel_values`` for a ViT, ``x`` for ``forward(self, x)``), and returns its logits
(and the embedding when the model gives one). Optimum's exporter is not used for the
classifiers: it covers Hugging Face architectures only, and this one exporter handles those
and users' own modules alike; parity against PyTorch is checked either way.
"""

from __future__ import annotations

import io
import warnings
from typing import TYPE_CHECKING

import torch  # this module is only imported by steps that export, never at CLI start-up

from modelpress.core.errors import ModelpressError
from modelpress.core.handoffs import Parity
from modelpress.tasks import split_outputs
from modelpress.tasks.calling import Binding
from modelpress.tasks.evaluation import fidelity, onnx_runner, onnx_session, predict, torch_runner

if TYPE_CHECKING:
    import onnx
    import pandas as pd

    from modelpress.tasks import Task

OPSET = 17
# An fp32 export must reproduce PyTorch: anything beyond float noise is an exporter bug.
PARITY_MIN_AGREEMENT = 0.99
PARITY_MIN_COSINE = 0.999


def export_onnx(model: torch.nn.Module, task: Task, sample: pd.DataFrame) -> onnx.ModelProto:
    """Export ``model`` with dynamic batch (and sequence) axes; its graph inputs are named after
    the model's own arguments (``x`` for ``forward(self, x)``), as the task's binding calls it."""
    import onnx

    model = model.eval()
    example = {k: torch.from_numpy(v) for k, v in task.example(sample).items()}
    binding = task.binding(model, example)
    with torch.no_grad():  # not inference_mode: a TorchScript module once run with autograd fails in it
        raw = binding.call(model, example)
    # A tuple carries (logits, embedding); a ModelOutput or a tensor carries logits only.
    has_embedding = isinstance(raw, (tuple, list)) and len(raw) > 1
    output_names = ["logits", "embedding"] if has_embedding else ["logits"]
    task_axes = task.dynamic_axes()
    axes = {**{name: task_axes.get(key, {0: "batch"}) for name, key in zip(binding.names, binding.keys)},
            **{name: {0: "batch"} for name in output_names}}
    # A TorchScript module is exported as it is (its graph is already there; it cannot be traced
    # inside a wrapper), given its inputs in its own argument order, which the binding keeps.
    exported = model if isinstance(model, torch.jit.ScriptModule) else _PositionalInputs(model, binding, has_embedding)
    buffer = io.BytesIO()
    # The TorchScript exporter is used on purpose: it is ~10× faster than the dynamo one on
    # these models, and yields the plain MatMul graphs ORT's quantizer expects.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(exported, tuple(example[key] for key in binding.keys), buffer,  # type: ignore[arg-type]  # a file object works too
                          input_names=list(binding.names),
                          output_names=output_names, dynamic_axes=axes, opset_version=OPSET, dynamo=False)
    return onnx.load_from_string(buffer.getvalue())


class _PositionalInputs(torch.nn.Module):
    """Takes the exporter's positional inputs and calls the model the way its binding says; returns
    a tuple."""

    def __init__(self, model: torch.nn.Module, binding: Binding, with_embedding: bool):
        super().__init__()
        self.model, self.binding, self.with_embedding = model, binding, with_embedding

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        logits, embedding = split_outputs(self.binding.call(self.model, dict(zip(self.binding.keys, inputs))))
        return (logits, embedding) if self.with_embedding else logits


def check_parity(model: torch.nn.Module, exported: onnx.ModelProto, task: Task,
                 frame: pd.DataFrame) -> Parity:
    """Compare PyTorch and ONNX Runtime on ``frame``; raise if the export changed the model."""

    ref_logits, ref_emb, _ = predict(torch_runner(model, task), task, frame)
    logits, emb, _ = predict(onnx_runner(onnx_session(exported), task), task, frame)
    report = Parity(**fidelity(logits, emb, ref_logits, ref_emb))
    if report.agreement < PARITY_MIN_AGREEMENT or report.cosine < PARITY_MIN_COSINE:
        raise ModelpressError(f"ONNX export does not match PyTorch on the eval batch: {report.model_dump()}")
    return report
