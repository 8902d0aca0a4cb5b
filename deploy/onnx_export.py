"""PyTorch → ONNX export with dynamic axes, checked for parity against PyTorch.

One exporter for every module kind (eager, TorchScript, Hugging Face ``PreTrainedModel``): the
graph takes exactly the task's inputs (``Task.input_names``) and returns its logits (and the
embedding when the model gives one). Optimum's exporter is not used for Hugging Face
classifiers because its BERT-family graphs add a ``token_type_ids`` input that the task's
batches, and the serving clients, do not send; parity against PyTorch is checked either way.
"""

from __future__ import annotations

import io
import warnings
from typing import TYPE_CHECKING, Any, cast

import torch  # this module is only imported by steps that export, never at CLI start-up

from modelpress.errors import ModelpressError
from modelpress.handoffs import Parity
from modelpress.tasks import split_outputs

if TYPE_CHECKING:
    import onnx
    import pandas as pd

    from modelpress.tasks import Task

OPSET = 17
# An fp32 export must reproduce PyTorch: anything beyond float noise is an exporter bug.
PARITY_MIN_AGREEMENT = 0.99
PARITY_MIN_COSINE = 0.999


def export_onnx(model: torch.nn.Module, task: Task, sample: pd.DataFrame) -> onnx.ModelProto:
    """Export ``model`` with the task's input names and dynamic batch (and sequence) axes."""
    import onnx

    model = model.eval()
    example = {k: torch.from_numpy(v) for k, v in task.example(sample).items()}
    with torch.inference_mode():
        raw = model(**example)
    # A tuple carries (logits, embedding); a ModelOutput or a tensor carries logits only.
    has_embedding = isinstance(raw, (tuple, list)) and len(raw) > 1
    output_names = ["logits", "embedding"] if has_embedding else ["logits"]
    axes = {**task.dynamic_axes(), **{name: {0: "batch"} for name in output_names}}
    exported, inputs = _exportable(model, example, has_embedding)
    buffer = io.BytesIO()
    # The TorchScript exporter is used on purpose: it is ~10× faster than the dynamo one on
    # these models, and yields the plain MatMul graphs ORT's quantizer expects.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(exported, tuple(inputs.values()), buffer,  # type: ignore[arg-type]  # a file object works too
                          input_names=list(inputs),
                          output_names=output_names, dynamic_axes=axes, opset_version=OPSET, dynamo=False)
    return onnx.load_from_string(buffer.getvalue())


def _exportable(model: torch.nn.Module, example: dict[str, torch.Tensor],
                has_embedding: bool) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    """What the exporter is given, with its inputs in positional order.

    A TorchScript module is exported as it is (its graph is already there; it cannot be traced
    inside a wrapper), with the task's inputs in the order of its ``forward`` arguments.
    """
    if isinstance(model, torch.jit.ScriptModule):
        schema = cast(Any, model.forward).schema  # a ScriptMethod's, not a plain function's
        names = [argument.name for argument in schema.arguments[1:]]
        missing = [n for n in names if n not in example]
        if missing:
            raise ModelpressError(f"the TorchScript model's forward takes {', '.join(names)}; the task gives "
                                  f"{', '.join(example)}")
        return model, {n: example[n] for n in names}
    return _PositionalInputs(model, list(example), has_embedding), example


class _PositionalInputs(torch.nn.Module):
    """Feeds the exporter's positional inputs to the model by name, returns a tuple."""

    def __init__(self, model: torch.nn.Module, names: list[str], with_embedding: bool):
        super().__init__()
        self.model, self.names, self.with_embedding = model, names, with_embedding

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        logits, embedding = split_outputs(self.model(**dict(zip(self.names, inputs))))
        return (logits, embedding) if self.with_embedding else logits


def check_parity(model: torch.nn.Module, exported: onnx.ModelProto, task: Task,
                 frame: pd.DataFrame) -> Parity:
    """Compare PyTorch and ONNX Runtime on ``frame``; raise if the export changed the model."""
    from modelpress.evaluate import fidelity, onnx_runner, onnx_session, predict, torch_runner

    ref_logits, ref_emb, _ = predict(torch_runner(model), task, frame)
    logits, emb, _ = predict(onnx_runner(onnx_session(exported)), task, frame)
    report = Parity(**fidelity(logits, emb, ref_logits, ref_emb))
    if report.agreement < PARITY_MIN_AGREEMENT or report.cosine < PARITY_MIN_COSINE:
        raise ModelpressError(f"ONNX export does not match PyTorch on the eval batch: {report.model_dump()}")
    return report
