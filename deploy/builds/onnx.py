"""``export: [onnx]``: the gated ONNX graph as an MLflow ONNX model — the registered version."""

from __future__ import annotations

from typing import Any, ClassVar

from modelpress.builds import Build, BuildContext
from modelpress.core.handoffs import BuildReport
from modelpress.core.registry import RecipeFacts, register_build
from modelpress.tracking.model_registry import ONNX_ARTIFACT

# Given explicitly because MLflow's inference imports the model in a subprocess, which costs
# tens of seconds per model.
ONNX_REQUIREMENTS = ["onnx", "onnxruntime"]


@register_build("onnx")
class OnnxBuild(Build):
    summary: ClassVar[str] = "the ONNX graph ONNX Runtime evaluated (parity-checked against PyTorch); registered"
    registers: ClassVar[bool] = True

    def problems(self, facts: RecipeFacts) -> list[str]:
        if facts.task.evaluated_in != "onnx":
            return [f"a {facts.task.name} model is evaluated as a PyTorch module; register "
                    f"{facts.task.registered_build!r} instead"]
        return []

    def write(self, context: BuildContext) -> BuildReport:
        import mlflow

        if context.onnx is None:
            raise ValueError("the onnx build needs the ONNX candidate")
        # MLflow moves large initializers to external data *in the proto it is given*: log a copy
        # (carrying the image processor, if any) so the candidate in memory stays self-contained.
        logged = context.with_preprocessor(context.onnx)
        info = mlflow.onnx.log_model(logged, name=ONNX_ARTIFACT, pip_requirements=ONNX_REQUIREMENTS,
                                     extra_files=context.preprocessor_files() or None)
        checks = context.parity.model_dump() if context.parity is not None else {}
        return BuildReport(name="onnx", artifact_path=ONNX_ARTIFACT, model_uri=info.model_uri, checks=checks)

    @classmethod
    def load_registered(cls, model_uri: str) -> Any:
        import mlflow

        return mlflow.onnx.load_model(model_uri)
