"""``export: [tensorrt]``: a TensorRT engine in the model repository, where TensorRT imports.

Without TensorRT (CPU machines, this repository's CI) the build says so in the log and the run's
``modelpress.tensorrt`` tag and ships nothing; the ONNX builds still ship. A failed engine build
never loses the others.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import ClassVar, Literal

from modelpress.builds import Build, BuildContext, onnx_graph_problems
from modelpress.core.errors import ModelpressError
from modelpress.core.handoffs import BuildReport
from modelpress.core.registry import RecipeFacts, register_build
from modelpress.deploy.pull import REPOSITORY_ARTIFACT
from modelpress.deploy.tensorrt import TensorRTUnavailable, build_engine
from modelpress.deploy.triton_repo import write_tensorrt_model

log = logging.getLogger(__name__)


@register_build("tensorrt")
class TensorRTBuild(Build):
    precision: Literal["auto", "fp32", "fp16", "int8"] = "auto"  # auto: int8 for QDQ graphs, else fp16

    summary: ClassVar[str] = "a TensorRT engine (<name>-tensorrt/<version>/model.plan) on GPU runners"

    def problems(self, facts: RecipeFacts) -> list[str]:
        return onnx_graph_problems(facts)

    def write(self, context: BuildContext) -> BuildReport:
        import mlflow

        assert context.onnx is not None and context.version is not None
        qdq = any(node.op_type == "QuantizeLinear" for node in context.onnx.graph.node)
        precision = self.precision if self.precision != "auto" else "int8" if qdq else "fp16"
        try:
            engine = build_engine(context.onnx, precision)
        except TensorRTUnavailable as exc:
            log.warning("%s", exc)
            return self._skipped(str(exc))
        except ModelpressError as exc:
            log.error("TensorRT engine build failed; shipping ONNX only: %s", exc)
            return self._skipped(f"build failed: {exc}")
        metadata = {"name": context.name, "version": context.version, "precision": precision}
        with tempfile.TemporaryDirectory() as tmp:
            write_tensorrt_model(Path(tmp), context.name, context.version, engine, context.onnx, metadata)
            mlflow.log_artifacts(tmp, REPOSITORY_ARTIFACT)
        mlflow.set_tag("modelpress.tensorrt", f"built ({precision})")
        return BuildReport(name="tensorrt", artifact_path=f"{REPOSITORY_ARTIFACT}/{context.name}-tensorrt")

    def _skipped(self, why: str) -> BuildReport:
        import mlflow

        mlflow.set_tag("modelpress.tensorrt", why[:5000])
        return BuildReport(name="tensorrt", notes=[why])
