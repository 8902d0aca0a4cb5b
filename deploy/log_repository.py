"""Log a Triton model repository for a registered version into the active MLflow run."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelpress.core.errors import ModelpressError
from modelpress.deploy.pull import REPOSITORY_ARTIFACT
from modelpress.deploy.tensorrt import TensorRTUnavailable, build_engine
from modelpress.deploy.triton_repo import write_onnx_model, write_tensorrt_model

if TYPE_CHECKING:
    import onnx

log = logging.getLogger(__name__)


def log_model_repository(model: onnx.ModelProto, name: str, version: str | int,
                         export: list[str], parity: dict[str, float]) -> dict[str, Any]:
    """Build ``<name>/<version>/model.onnx`` (+ a TensorRT plan when asked for and possible)
    and log it as the run's ``model_repository`` artifact; returns what was built."""
    import mlflow

    built: dict[str, Any] = {"artifact": REPOSITORY_ARTIFACT, "version": str(version), "formats": []}
    metadata = {"name": name, "version": str(version), "parity_vs_pytorch": parity}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if "triton-repository" in export:
            write_onnx_model(root, name, version, model, "KIND_CPU", metadata)
            built["formats"].append("onnx")
        if "tensorrt" in export:
            try:
                engine = build_engine(model, "int8" if _is_qdq(model) else "fp16")
                write_tensorrt_model(root, name, version, engine, model, metadata)
                built["formats"].append("tensorrt")
            except TensorRTUnavailable as exc:
                log.warning("%s", exc)
                built["tensorrt"] = str(exc)
            except ModelpressError as exc:  # a failed engine build must not lose the ONNX build
                log.error("TensorRT engine build failed; shipping ONNX only: %s", exc)
                built["tensorrt"] = f"build failed: {exc}"[:5000]
        if built["formats"]:
            mlflow.log_artifacts(str(root), REPOSITORY_ARTIFACT)
    tags = {"modelpress.model_repository": ",".join(built["formats"]) or "none"}
    if "tensorrt" in built:
        tags["modelpress.tensorrt"] = built["tensorrt"][:5000]
    mlflow.set_tags(tags)
    return built


def _is_qdq(model: onnx.ModelProto) -> bool:
    return any(node.op_type == "QuantizeLinear" for node in model.graph.node)
