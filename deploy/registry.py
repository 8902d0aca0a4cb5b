"""MLflow model registry: register candidates, move aliases safely.

The registered artifact is the ONNX model (what serving pulls); the run also holds the
PyTorch model. Promotion is check-then-set: the champion alias is re-read right before it
moves, and if another run moved it meanwhile the comparison is redone against the new
champion, so two racing runs cannot leave @champion on the worse model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

ONNX_ARTIFACT = "onnx_model"
TORCH_ARTIFACT = "pytorch_model"
MAX_PROMOTION_ATTEMPTS = 5


def client() -> "MlflowClient":
    from mlflow import MlflowClient

    return MlflowClient()


def alias_version(name: str, alias: str, mlflow_client: "MlflowClient | None" = None) -> "ModelVersion | None":
    from mlflow.exceptions import MlflowException

    c = mlflow_client or client()
    try:
        return c.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def resolve_version(model_uri: str, mlflow_client: "MlflowClient | None" = None) -> "ModelVersion":
    """The version behind ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``."""
    c = mlflow_client or client()
    body = model_uri.removeprefix("models:/")
    if "@" in body:
        name, alias = body.split("@", 1)
        return c.get_model_version_by_alias(name, alias)
    name, version = body.rsplit("/", 1)
    return c.get_model_version(name, version)


def register(model_uri: str, name: str, tags: dict[str, str]) -> "ModelVersion":
    """Register ``model_uri`` as a new version of ``name`` carrying ``tags``."""
    import mlflow

    version = mlflow.register_model(model_uri, name, tags={k: str(v) for k, v in tags.items()})
    return version


@dataclass
class Promotion:
    promoted: bool
    reason: str
    previous: str | None  # the version the alias pointed to before


def promote(name: str, version: str, alias: str, candidate_score: float,
            score_of: Callable[["ModelVersion"], float], tolerance: float = 0.0,
            mlflow_client: "MlflowClient | None" = None) -> Promotion:
    """Move ``alias`` to ``version`` unless the current holder scores better beyond ``tolerance``."""
    c = mlflow_client or client()
    for _ in range(MAX_PROMOTION_ATTEMPTS):
        current = alias_version(name, alias, c)
        if current is not None and current.version == str(version):
            return Promotion(True, f"@{alias} already on version {version}", current.version)
        if current is not None:
            champion_score = score_of(current)
            if candidate_score < champion_score - tolerance:
                return Promotion(False, f"candidate scores {candidate_score:.4f} < @{alias} v{current.version} "
                                 f"{champion_score:.4f} - tolerance {tolerance}", current.version)
        # check-then-set: only move the alias if nobody moved it while we were comparing
        latest = alias_version(name, alias, c)
        if _same(latest, current):
            c.set_registered_model_alias(name, alias, str(version))
            if current is not None:  # what `modelpress rollback` restores
                c.set_model_version_tag(name, str(version), previous_tag(alias), current.version)
            return Promotion(True, f"@{alias} → version {version}",
                             current.version if current else None)
    return Promotion(False, f"@{alias} kept moving under us; gave up after {MAX_PROMOTION_ATTEMPTS} attempts", None)


def previous_tag(alias: str) -> str:
    """The version tag that records which version held ``alias`` before this one."""
    return f"previous_{alias}"


def _same(a: "ModelVersion | None", b: "ModelVersion | None") -> bool:
    return (a.version if a else None) == (b.version if b else None)


def version_tags(version: "ModelVersion") -> dict[str, Any]:
    return dict(version.tags or {})
