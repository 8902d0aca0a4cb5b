"""``source: onnx``: an ONNX graph; only graph stages (``quantize``) can follow it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ValidationInfo, field_validator

from modelpress.core.errors import ModelpressError
from modelpress.core.files import resolve_path, sha256_file, unreadable
from modelpress.core.registry import register_source
from modelpress.sources.base import Source
from modelpress.tasks.calling import bind, graph_signature

if TYPE_CHECKING:
    import pandas as pd

    from modelpress.tasks import Task


@register_source("onnx")
class OnnxModel(Source):
    source: Literal["onnx"] = "onnx"
    path: Path

    artifact = "graph"
    summary = "an ONNX model file; only graph stages (quantize) apply"
    init_order = 20

    @field_validator("path")
    @classmethod
    def _file(cls, value: Path, info: ValidationInfo) -> Path:
        return resolve_path(value, info)

    def problems(self, task: type[Task] | None) -> list[str]:
        problems = [] if self.task is not None else ["model.task: required for source onnx"]
        try:
            model = self._read()
        except Exception as exc:  # noqa: BLE001 -- onnx raises DecodeError, ValidationError, OSError…
            return [*problems, f"model.path: {exc}"]
        if task is not None:
            problems += self._input_problems(model, task)
        return problems

    def _input_problems(self, model: Any, task: type[Task]) -> list[str]:
        """The graph must take the task's inputs as evaluation feeds them (tasks.calling.bind: by
        name, or as many inputs in the task's order); found here, not after the stages have run."""
        initializers = {t.name for t in model.graph.initializer}  # old exporters list them as inputs
        names = [i.name for i in model.graph.input if i.name not in initializers]
        wanted = (*task.input_names, *task.optional_inputs)
        try:
            bind(graph_signature(names), task.input_names, task.optional_inputs, wanted)
        except ModelpressError:
            count = len(task.input_names)
            return [f"model.path: {self.path.name}'s graph takes inputs ({', '.join(names)}), which the "
                    f"{task.name} task cannot feed: it gives {', '.join(task.input_names)}; export the graph "
                    f"with inputs named so, or with {count} input{'s' if count > 1 else ''} taken in that order"]
        return []

    def _read(self) -> Any:
        import onnx

        try:
            model = onnx.load(str(self.path))
            onnx.checker.check_model(model)
        except Exception as exc:  # noqa: BLE001 -- see above
            raise unreadable(self.path, "ONNX model", exc) from None
        return model

    def fingerprint(self) -> str:
        return f"sha256:{sha256_file(self.path)}"

    def load(self, task: Task, dataset: pd.DataFrame) -> Any:
        return self._read()

    @classmethod
    def recognizes(cls, path: Path) -> bool:
        return path.is_file() and path.suffix == ".onnx"
