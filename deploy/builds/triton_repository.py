"""``export: [triton-repository]``: ``<name>/<version>/model.onnx`` + a ``config.pbtxt`` read from the graph."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field

from modelpress.builds import Build, BuildContext, onnx_graph_problems
from modelpress.core.handoffs import BuildReport
from modelpress.core.registry import RecipeFacts, register_build
from modelpress.deploy.pull import REPOSITORY_ARTIFACT
from modelpress.deploy.triton_repo import write_onnx_model


@register_build("triton-repository")
class TritonRepositoryBuild(Build):
    instance_kind: Literal["KIND_CPU", "KIND_GPU"] = Field(
        "KIND_CPU", description="instance_group kind in config.pbtxt (modelpress pull can rewrite it)")

    summary: ClassVar[str] = "a Triton model repository (model.onnx + config.pbtxt, dynamic batching)"

    def problems(self, facts: RecipeFacts) -> list[str]:
        return onnx_graph_problems(facts)

    def write(self, context: BuildContext) -> BuildReport:
        import mlflow

        assert context.onnx is not None and context.version is not None
        metadata = {"name": context.name, "version": context.version,
                    "parity_vs_pytorch": context.parity.model_dump() if context.parity else {}}
        with tempfile.TemporaryDirectory() as tmp:
            write_onnx_model(Path(tmp), context.name, context.version, context.with_preprocessor(context.onnx),
                             self.instance_kind, metadata)
            mlflow.log_artifacts(tmp, REPOSITORY_ARTIFACT)
        mlflow.set_tag("modelpress.model_repository", "onnx")
        return BuildReport(name="triton-repository", artifact_path=f"{REPOSITORY_ARTIFACT}/{context.name}")
