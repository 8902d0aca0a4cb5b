"""``modelpress pull``: a registered model version -> a ready Triton-layout model repository, or
(``--build NAME``) the LLM build the registering run logged under ``builds/NAME/``.

Used by the Helm chart's initContainer, so a wrong URI or an unreachable registry must fail
with the URI in the message (the pod then never turns ready). The registered ONNX model is the
source of truth: its config.pbtxt is generated from the graph for the requested instance kind;
a TensorRT engine is taken from the run's logged model repository when one was built.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelpress.core.errors import ModelpressError
from modelpress.deploy.builds import BUILDS_ARTIFACT
from modelpress.deploy.triton_repo import TENSORRT_SUFFIX, InstanceKind, write_onnx_model
from modelpress.tracking.model_registry import resolve_version

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

MODEL_URI = re.compile(r"^models:/(?P<name>[A-Za-z0-9][\w.-]*)(@(?P<alias>[\w-]+)|/(?P<version>\d+))$")
REPOSITORY_ARTIFACT = "model_repository"  # where publish logs the repository inside the run


def pull(model_uri: str, dest: Path, instance_kind: InstanceKind = "KIND_CPU",
         tracking_uri: str | None = None, optimize: bool = False) -> Path:
    """Fetch ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` into ``dest``; return the model folder."""
    if not MODEL_URI.match(model_uri):
        raise ModelpressError(f"{model_uri!r} is not a registered model URI "
                              "(expected models:/NAME@ALIAS or models:/NAME/VERSION)")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # keep pod logs readable
    from mlflow import MlflowClient

    mlflow_client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    version = _resolve(model_uri, mlflow_client)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest, prefix=".pull-") as scratch:
        staging = Path(scratch) / "repository"
        model = _download_onnx(model_uri, version, Path(scratch), mlflow_client)
        metadata = _provenance(model_uri, version, mlflow_client)
        if optimize:
            from modelpress.deploy.ort_optimize import optimize_offline

            model, metadata["ort_offline_optimization"] = optimize_offline(model)
        write_onnx_model(staging, version.name, version.version, model, instance_kind, metadata=metadata)
        _copy_tensorrt(version, mlflow_client, staging, Path(scratch))
        for folder in staging.iterdir():  # replace, never merge, a previously pulled model
            shutil.rmtree(dest / folder.name, ignore_errors=True)
            folder.rename(dest / folder.name)
    return dest / version.name


def _resolve(model_uri: str, mlflow_client: MlflowClient) -> ModelVersion:
    from mlflow.exceptions import MlflowException

    try:
        return resolve_version(model_uri, mlflow_client)
    except MlflowException as exc:
        raise ModelpressError(f"cannot resolve {model_uri} in the MLflow registry at "
                              f"{mlflow_client.tracking_uri}: {exc.message}") from None


def _download_onnx(model_uri: str, version: ModelVersion, scratch: Path, mlflow_client: MlflowClient) -> Any:
    import mlflow
    import onnx

    # Where the version's files are, asked of *our* client: MLflow resolves a models:/ URI through
    # the process-wide registry URI, not the tracking_uri passed to download_artifacts.
    source = mlflow_client.get_model_version_download_uri(version.name, version.version)
    local = mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(scratch / "download"),
                                               tracking_uri=mlflow_client.tracking_uri)
    path = Path(local) / "model.onnx"
    if not path.is_file():
        raise ModelpressError(f"{model_uri} (version {version.version}) has no model.onnx; "
                              "modelpress registers ONNX models with mlflow.onnx.log_model")
    try:  # mlflow stores weights as external data next to the graph; load merges them
        return onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001 -- onnx raises DecodeError, OSError, ValidationError…
        raise ModelpressError(f"{model_uri}: the registered model.onnx cannot be read: {exc}") from None


def _provenance(model_uri: str, version: ModelVersion, mlflow_client: MlflowClient) -> dict[str, Any]:
    run = mlflow_client.get_run(version.run_id) if version.run_id else None
    parity = {k.removeprefix("parity."): v for k, v in (run.data.metrics if run else {}).items()
              if k.startswith("parity.")}
    return {"model_uri": model_uri, "name": version.name, "version": version.version,
            "run_id": version.run_id, "aliases": list(version.aliases or []),
            "tags": dict(version.tags or {}), "parity_vs_pytorch": parity}


def _copy_tensorrt(version: ModelVersion, mlflow_client: MlflowClient, staging: Path,
                   scratch: Path) -> None:
    """Bring the run's TensorRT engine along when publish built one (GPU runners only)."""
    if not version.run_id:
        return
    trt = f"{REPOSITORY_ARTIFACT}/{version.name}{TENSORRT_SUFFIX}"
    if not mlflow_client.list_artifacts(version.run_id, trt):
        return
    local = mlflow_client.download_artifacts(version.run_id, trt, str(scratch / "trt"))
    shutil.copytree(local, staging / Path(trt).name)


def pull_build(model_uri: str, build: str, dest: Path, tracking_uri: str | None = None) -> Path:
    """Fetch the ``build`` folder logged with ``models:/NAME@ALIAS`` into ``dest/<build>``; return it."""

    if not MODEL_URI.match(model_uri):
        raise ModelpressError(f"{model_uri!r} is not a registered model URI "
                              "(expected models:/NAME@ALIAS or models:/NAME/VERSION)")
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", build):
        raise ModelpressError(f"--build {build!r}: a build name is lower-case letters, digits and '-'")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from mlflow import MlflowClient

    mlflow_client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    version = _resolve(model_uri, mlflow_client)
    logged = {Path(a.path).name for a in mlflow_client.list_artifacts(version.run_id, BUILDS_ARTIFACT)
              if a.is_dir} if version.run_id else set()
    if build not in logged:
        have = ", ".join(sorted(logged)) or "none"
        raise ModelpressError(f"{model_uri} (version {version.version}) has no {build!r} build; its run "
                              f"logged: {have}")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest, prefix=".pull-") as scratch:
        local = Path(mlflow_client.download_artifacts(str(version.run_id), f"{BUILDS_ARTIFACT}/{build}", scratch))
        metadata = _provenance(model_uri, version, mlflow_client)
        (local / "modelpress.json").write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")
        target = dest / build
        shutil.rmtree(target, ignore_errors=True)  # replace, never merge, a previously pulled build
        local.rename(target)
    return target
