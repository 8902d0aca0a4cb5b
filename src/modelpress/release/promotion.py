"""Registry operations behind ``modelpress promote`` / ``rollback``: outside a pipeline run.

* promote: move an alias to a version that passed its gate, unless the current holder is
  better beyond a tolerance (the compare-and-set of ``deploy.registry.promote``). Outside a
  pipeline there is no eval data at hand, so versions are compared on the task's primary
  metric recorded at registration (``primary_metric``, ``primary_direction`` tags), and only
  when both were scored on the same data (``data_fingerprint``).
* rollback: put the alias back on the version recorded in the holder's ``previous_<alias>``
  tag (written by every promotion), so repeated rollbacks walk back the champion history.
* copy: one registry to another (staging → production tracking server): the version's ONNX
  model and tags are logged and registered in the target, then promoted there.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelpress.core.errors import ModelpressError
from modelpress.tracking.alias_lock import alias_lock
from modelpress.tracking.model_registry import alias_version, previous_tag, promote
from modelpress.tracking.uris import use_tracking

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

PROMOTIONS_EXPERIMENT = "modelpress-promotions"


@dataclass
class Outcome:
    promoted: bool
    reason: str
    name: str
    version: str
    alias: str
    previous: str | None = None
    tracking_uri: str | None = None
    checks: list[str] = field(default_factory=list)  # the version's gate checks, with their intervals


def gate_checks(version: ModelVersion) -> list[str]:
    """The gate checks registered with ``version`` (``gate.<metric>.<rule>`` tags), as lines."""
    return [f"{key.removeprefix('gate.')}: {value}" for key, value in sorted((version.tags or {}).items())
            if key.startswith("gate.")]


tracking = use_tracking  # kept for callers of the old name


def _version(c: MlflowClient, name: str, version: str | None, alias: str | None) -> ModelVersion:
    from mlflow.exceptions import MlflowException

    try:
        if version is None:
            return c.get_model_version_by_alias(name, alias or "champion")
        return c.get_model_version(name, version)
    except MlflowException as exc:
        what = f"version {version}" if version is not None else f"@{alias}"
        raise ModelpressError(f"registered model {name!r}: no {what} ({exc.message.splitlines()[0]})") from None


def _recorded_score(version: ModelVersion, metric: str | None = None) -> float:
    """The primary metric recorded at registration, oriented so that higher is better.

    Versions registered before the task recorded its primary metric carry ``accuracy`` only.
    """
    tags = version.tags or {}
    recorded = tags.get("primary_metric", "accuracy")
    if metric is not None and recorded != metric:
        raise ModelpressError(f"{version.name} v{version.version} was scored on {recorded}, the other "
                              f"version on {metric}: not comparable; use --force to promote anyway")
    try:
        value = float(tags[recorded])
    except (KeyError, ValueError):
        raise ModelpressError(f"{version.name} v{version.version} has no recorded {recorded} tag "
                              "(was it registered by modelpress?); use --force to promote anyway") from None
    return value if tags.get("primary_direction", "higher") == "higher" else -value


def promote_version(name: str, version: str | None = None, source_alias: str = "challenger",
                    alias: str = "champion", tolerance: float = 0.0, force: bool = False,
                    tracking_uri: str | None = None) -> Outcome:
    """Move ``alias`` to a version (given, or the one holding ``source_alias``)."""

    with tracking(tracking_uri) as c:
        chosen = _version(c, name, version, source_alias if version is None else None)
        incomplete = (chosen.tags or {}).get("incomplete")
        if incomplete and not force:
            raise ModelpressError(f"{name} v{chosen.version} is incomplete: {incomplete}")
        gate = (chosen.tags or {}).get("gate")
        if gate != "passed" and not force:
            raise ModelpressError(f"{name} v{chosen.version}: gate {gate or 'not recorded'} "
                                  f"({(chosen.tags or {}).get('gate_reason', 'no reason recorded')}); "
                                  "a version that failed its gate is never promoted (use --force to override)")

        def score_of(current: ModelVersion) -> float:
            if force:
                return float("-inf")
            if current.tags.get("data_fingerprint") != chosen.tags.get("data_fingerprint"):
                raise ModelpressError(
                    f"@{alias} v{current.version} was scored on other data "
                    f"({current.tags.get('data_fingerprint')} vs {chosen.tags.get('data_fingerprint')}); "
                    "scores are not comparable: re-run the recipe (which re-evaluates the champion "
                    "on the same rows) or use --force")
            return _recorded_score(current, (chosen.tags or {}).get("primary_metric", "accuracy"))

        candidate = float("inf") if force else _recorded_score(chosen)
        result = promote(name, chosen.version, alias, candidate, score_of, tolerance=tolerance, mlflow_client=c)
        c.set_model_version_tag(name, chosen.version, "promotion",
                                f"{'promoted' if result.promoted else 'not promoted'} (cli): {result.reason}"[:5000])
        return Outcome(result.promoted, result.reason, name, chosen.version, alias, result.previous, tracking_uri,
                       gate_checks(chosen))


def rollback(name: str, alias: str = "champion", tracking_uri: str | None = None) -> Outcome:
    """Restore the version that held ``alias`` before the current holder."""

    with tracking(tracking_uri) as c, alias_lock(c, name, alias):  # the lock promotions take
        current = alias_version(name, alias, c)
        if current is None:
            raise ModelpressError(f"registered model {name!r} has no @{alias} to roll back")
        previous = (current.tags or {}).get(previous_tag(alias))
        if not previous:
            raise ModelpressError(f"{name} @{alias} v{current.version} records no previous @{alias} "
                                  f"(tag {previous_tag(alias)!r}): it was the first one")
        c.set_registered_model_alias(name, alias, previous)
        c.set_model_version_tag(name, current.version, "rolled_back", f"@{alias} returned to v{previous}")
        return Outcome(True, f"@{alias}: v{current.version} → v{previous} (rollback)", name, previous, alias,
                       current.version, tracking_uri)


def copy_version(name: str, version: str | None, source_uri: str | None, target_uri: str,
                 source_alias: str = "challenger", target_name: str | None = None) -> tuple[str, str]:
    """Copy one version's ONNX model and tags into another registry; (target name, version)."""
    import mlflow

    with tracking(source_uri) as src:
        chosen = _version(src, name, version, source_alias if version is None else None)
        with tempfile.TemporaryDirectory() as tmp:
            local = mlflow.artifacts.download_artifacts(f"models:/{name}/{chosen.version}", dst_path=tmp)
            model = _load_onnx(Path(local))
    origin = _safe(source_uri or mlflow.get_tracking_uri())
    tags = {**(chosen.tags or {}), "promoted_from": f"{origin}#{name}/{chosen.version}"}
    tags = {k: v for k, v in tags.items() if not k.startswith("previous_")}  # history is per registry
    target_name = target_name or name
    with tracking(target_uri):
        mlflow.set_experiment(experiment_id=_promotions_experiment(target_uri))
        with mlflow.start_run(run_name=f"copy {name} v{chosen.version}"):
            mlflow.set_tags({"modelpress.promoted_from": tags["promoted_from"]})
            info = mlflow.onnx.log_model(model, name="onnx_model", pip_requirements=["onnx", "onnxruntime"])
        registered = mlflow.register_model(info.model_uri, target_name, tags={k: str(v) for k, v in tags.items()})
    return target_name, str(registered.version)


def _load_onnx(folder: Path) -> Any:
    import onnx

    files = sorted(folder.rglob("*.onnx"))
    if not files:
        raise ModelpressError(f"no .onnx file in the registered model's artifacts ({folder})")
    return onnx.load(str(files[0]))


def _safe(uri: str) -> str:
    """The URI without credentials (user:password@host)."""
    if "://" in uri and "@" in uri.split("://", 1)[1].split("/", 1)[0]:
        scheme, rest = uri.split("://", 1)
        return f"{scheme}://{rest.split('@', 1)[1]}"
    return uri


def _promotions_experiment(uri: str) -> str:
    """The target's promotions experiment; on a sqlite registry its artifacts sit beside the
    database (MLflow would otherwise write them to ./mlruns of the current folder)."""
    import mlflow

    existing = mlflow.get_experiment_by_name(PROMOTIONS_EXPERIMENT)
    if existing is not None:
        return existing.experiment_id
    location = None
    if uri.startswith("sqlite:///"):
        location = (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").resolve().as_uri()
    return mlflow.create_experiment(PROMOTIONS_EXPERIMENT, artifact_location=location)


def promote_across(name: str, version: str | None, source_uri: str | None, target_uri: str, alias: str = "champion",
                   source_alias: str = "challenger", tolerance: float = 0.0, force: bool = False) -> Outcome:
    """Copy a version from one registry to another and promote it there, in one call."""
    with tracking(source_uri) as src:
        chosen = _version(src, name, version, source_alias if version is None else None)
        if (chosen.tags or {}).get("gate") != "passed" and not force:
            raise ModelpressError(f"{name} v{chosen.version} did not pass its gate; "
                                  f"not copying it to {_safe(target_uri)}")
    target_name, target_version = copy_version(name, chosen.version, source_uri, target_uri)
    return promote_version(target_name, target_version, alias=alias, tolerance=tolerance, force=force,
                           tracking_uri=target_uri)
