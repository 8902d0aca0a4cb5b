"""How modelpress's records travel between a user's steps and show in the ZenML dashboard.

Every record that crosses steps (:mod:`modelpress.core.handoffs`: ``Evaluation``, ``Verdict``,
``Registration``, ``Promotion``, ...) is stored as JSON by ZenML's pydantic materializer, so a
user's later step receives it typed. :class:`RecordMaterializer`, registered for their common
base the ZenML way (``ASSOCIATED_TYPES``), adds what the dashboard shows beside the JSON: the
gate's checks and the evaluation's metrics as a Markdown table, and the headline numbers as
artifact metadata (searchable). Models travel as ONNX graphs (``OnnxModelMaterializer``,
registered for ``onnx.ModelProto``) and PyTorch modules (``TorchModuleMaterializer``, named by
each step that returns one, quantized modules included).
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

from zenml.enums import VisualizationType
from zenml.materializers.pydantic_materializer import PydanticMaterializer

from modelpress.core.handoffs import Check, Evaluation, Promotion, Record, Registration, Verdict
from modelpress.deploy.materializers import OnnxModelMaterializer, TorchModuleMaterializer

MARKDOWN = "summary.md"


def markdown(record: Record) -> str | None:
    """The record as the dashboard shows it; None for records with nothing more to show."""
    if isinstance(record, Verdict):
        rows = [f"| {c.metric} | {c.rule} | {_number(c.value)} | {_interval(c)} | {c.limit:.4g} | {c.result} |"
                for c in record.checks]
        head = f"**gate {'passed' if record.passed else 'FAILED'}**: {record.reason}\n\n"
        return head + "| metric | rule | estimate | interval | bound | |\n|---|---|---|---|---|---|\n" + "\n".join(rows)
    if isinstance(record, Evaluation):
        rows = [f"| {m} | {record.baseline.get(m, float('nan')):.4g} | {v:.4g} |" for m, v in record.candidate.items()]
        return (f"**{record.task}** on {record.eval_rows} eval rows\n\n| metric | baseline | candidate |\n"
                "|---|---|---|\n" + "\n".join(rows))
    return None


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def _interval(check: Check) -> str:
    if check.low is None or check.high is None:
        return "—"
    return f"[{check.low:.4g}, {check.high:.4g}] ({check.level or 0:.0%}, {check.rows} rows)"


class RecordMaterializer(PydanticMaterializer):
    """ZenML's pydantic materializer, with a Markdown view and headline metadata."""

    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = (Record,)

    def save_visualizations(self, data: Any) -> dict[str, VisualizationType]:
        text = markdown(data)
        if text is None:
            return super().save_visualizations(data)
        path = os.path.join(self.uri, MARKDOWN)
        with self.artifact_store.open(path, "w") as f:
            f.write(text)
        return {path: VisualizationType.MARKDOWN}

    def extract_metadata(self, data: Any) -> dict[str, Any]:
        if isinstance(data, Verdict):
            return {"gate_passed": data.passed}
        if isinstance(data, Registration):
            return {"registered_model": data.name, "version": data.version}
        if isinstance(data, Promotion):
            return {"promoted": data.promoted, "version": data.version}
        if isinstance(data, Evaluation):
            return {f"candidate.{k}": v for k, v in data.candidate.items()}
        return {}


__all__ = ["OnnxModelMaterializer", "RecordMaterializer", "TorchModuleMaterializer"]
