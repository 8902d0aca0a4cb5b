"""``export: [pytorch]``: the gated PyTorch module as an MLflow PyTorch model — the registered
version for tasks evaluated as modules (their champions are loaded back from it)."""

from __future__ import annotations

from typing import Any, ClassVar

from modelpress.builds import Build, BuildContext
from modelpress.core.handoffs import BuildReport
from modelpress.core.registry import RecipeFacts, register_build
from modelpress.tracking.model_registry import TORCH_ARTIFACT


@register_build("pytorch")
class PytorchBuild(Build):
    summary: ClassVar[str] = "the PyTorch module the task evaluated (pickled with modelpress' modules); registered"
    registers: ClassVar[bool] = True

    def problems(self, facts: RecipeFacts) -> list[str]:
        if facts.task.evaluated_in != "torch":
            return [f"a {facts.task.name} model is evaluated in ONNX Runtime; register "
                    f"{facts.task.registered_build!r} instead (its PyTorch model is logged beside it)"]
        if facts.source.artifact == "graph":
            return ["an ONNX source has no PyTorch module"]
        return []

    def write(self, context: BuildContext) -> BuildReport:
        # publish logs every PyTorch candidate; this build registers that logged model
        if context.torch_model_uri is None:
            raise ValueError("the pytorch build needs the PyTorch candidate")
        return BuildReport(name="pytorch", artifact_path=TORCH_ARTIFACT, model_uri=context.torch_model_uri)

    @classmethod
    def load_registered(cls, model_uri: str) -> Any:
        import mlflow

        return mlflow.pytorch.load_model(model_uri).eval()
