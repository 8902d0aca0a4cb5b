"""MLflow model registry: register candidates, move aliases safely.

The registered artifact is the ONNX model (what serving pulls); the run also holds the
PyTorch model. Promotion is a compare-and-set under a registry lock (``promote`` and
``src/modelpress/tracking/alias_lock.py``): if another run moved the alias while we compared, the comparison
is redone against the new holder, so racing runs cannot leave @champion on the worse model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelpress.tracking.alias_lock import alias_lock

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

ONNX_ARTIFACT = "onnx_model"
TORCH_ARTIFACT = "pytorch_model"
# Each retry means another promotion won meanwhile, so this bounds how many may race one.
MAX_PROMOTION_ATTEMPTS = 20


def client() -> MlflowClient:
    from mlflow import MlflowClient

    return MlflowClient()


def alias_version(name: str, alias: str, mlflow_client: MlflowClient | None = None) -> ModelVersion | None:
    from mlflow.exceptions import MlflowException

    c = mlflow_client or client()
    try:
        return c.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def resolve_version(model_uri: str, mlflow_client: MlflowClient | None = None) -> ModelVersion:
    """The version behind ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``."""
    c = mlflow_client or client()
    body = model_uri.removeprefix("models:/")
    if "@" in body:
        name, alias = body.split("@", 1)
        return c.get_model_version_by_alias(name, alias)
    name, version = body.rsplit("/", 1)
    return c.get_model_version(name, version)


def register(model_uri: str, name: str, tags: dict[str, str]) -> ModelVersion:
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
            score_of: Callable[[ModelVersion], float], tolerance: float = 0.0,
            mlflow_client: MlflowClient | None = None,
            refuse: Callable[[ModelVersion], str | None] | None = None) -> Promotion:
    """Move ``alias`` to ``version`` unless the current holder scores better beyond ``tolerance``
    (or, given ``refuse``, unless it names a reason against the holder: a paired test).

    Compare-and-set on a registry without one (see ``src/modelpress/tracking/alias_lock.py``):
    1. read the holder and score it *outside* the lock (scoring can mean evaluating a model);
    2. take the alias lock, re-read the holder: if it moved meanwhile, release and start over
       from 1 (the comparison was against a stale holder);
    3. still under the lock, write ``previous_<alias>`` on our version first and then move the
       alias, so a reader never sees the alias on a version whose history link is missing;
    4. re-read the alias. If it is not on our version, or the lease ran out while we wrote
       (a breaker may have let another promoter in), we lost: put the alias back where it was
       if it still points at us and drop our history tag.
    """
    c = mlflow_client or client()
    version = str(version)
    for _ in range(MAX_PROMOTION_ATTEMPTS):
        current = alias_version(name, alias, c)
        if current is not None and str(current.version) == version:
            return Promotion(True, f"@{alias} already on version {version}", str(current.version))
        if current is not None and refuse is not None:
            reason = refuse(current)
            if reason:
                return Promotion(False, reason, str(current.version))
        elif current is not None:
            champion_score = score_of(current)
            if candidate_score < champion_score - tolerance:
                return Promotion(False, f"candidate scores {candidate_score:.4f} < @{alias} v{current.version} "
                                 f"{champion_score:.4f} - tolerance {tolerance}", str(current.version))
        outcome = _move_under_lock(c, name, version, alias, current)
        if outcome is not None:
            return outcome
    return Promotion(False, f"@{alias} kept moving under us; gave up after {MAX_PROMOTION_ATTEMPTS} attempts", None)


def _move_under_lock(c: MlflowClient, name: str, version: str, alias: str,
                     compared: ModelVersion | None) -> Promotion | None:
    """The set of compare-and-set; None when the holder moved since ``compared`` was read."""

    with alias_lock(c, name, alias) as lease:
        if not _same(alias_version(name, alias, c), compared):
            return None
        before = str(compared.version) if compared else None
        if before is not None:  # what `modelpress rollback` restores
            c.set_model_version_tag(name, version, previous_tag(alias), before)
        else:
            _drop_tag(c, name, version, previous_tag(alias))
        c.set_registered_model_alias(name, alias, version)
        now = alias_version(name, alias, c)
        ours = now is not None and str(now.version) == version
        if ours and lease.valid():
            return Promotion(True, f"@{alias} → version {version}", before)
        if ours:  # the lease ran out while we wrote: we cannot tell who else wrote, undo ours
            _restore(c, name, alias, before)
        _drop_tag(c, name, version, previous_tag(alias))
        return None


def _restore(c: MlflowClient, name: str, alias: str, before: str | None) -> None:
    if before is None:
        c.delete_registered_model_alias(name, alias)
    else:
        c.set_registered_model_alias(name, alias, before)


def _drop_tag(c: MlflowClient, name: str, version: str, key: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        c.delete_model_version_tag(name, version, key)
    except MlflowException:
        pass  # the tag was not there


def previous_tag(alias: str) -> str:
    """The version tag that records which version held ``alias`` before this one."""
    return f"previous_{alias}"


def _same(a: ModelVersion | None, b: ModelVersion | None) -> bool:
    return (str(a.version) if a else None) == (str(b.version) if b else None)


def version_tags(version: ModelVersion) -> dict[str, Any]:
    return dict(version.tags or {})
