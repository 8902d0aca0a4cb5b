"""Retraining: re-run the champion's own recipe on fresh data, gated against the champion.

Everything needed is read back from the registry, not from the user's disk: the champion
version → its MLflow run → ``recipe/recipe.json`` (the recipe it was built from) and
``data/profile.json`` (the profile of the data it was trained and evaluated on). The fresh
data are checked against that profile by a great-expectations suite generated from it
(schema, ranges, label balance, mean drift); drift stops the run before any training, with a
report, so nothing is registered or promoted. Otherwise it is the ordinary pipeline: the
candidate is gated against the baseline and the champion (re-measured on the fresh eval
rows) and promoted through the same check-then-set.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from modelpress.core.errors import ModelpressError
from modelpress.datasets.base import dataset_kind
from modelpress.pipelines.plan import build_plan
from modelpress.pipelines.run import run_recipe
from modelpress.recipe.schema import RecipeBase, validate_recipe
from modelpress.release.schedule import active_orchestrator, build_schedule, unschedulable_message
from modelpress.tracking.model_registry import alias_version
from modelpress.tracking.stack import ensure_experiment, ensure_stack
from modelpress.tracking.uris import point_mlflow_at


def champion_material(name: str, alias: str = "champion") -> tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(version, recipe, data profile, report) recorded with the version holding ``alias``."""
    import mlflow

    holder = alias_version(name, alias)
    if holder is None:
        raise ModelpressError(f"registered model {name!r} has no @{alias} to retrain (run its recipe first)")
    run_id = (holder.tags or {}).get("mlflow_run_id") or holder.run_id
    with tempfile.TemporaryDirectory() as tmp:
        try:
            recipe = _json(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="recipe/recipe.json",
                                                            dst_path=tmp))
            profile = _json(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="data/profile.json",
                                                            dst_path=tmp))
            report = _json(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="report/report.json",
                                                            dst_path=tmp))
        except Exception as exc:  # noqa: BLE001 -- MLflow raises several types for a missing artifact
            raise ModelpressError(f"{name} v{holder.version} (run {run_id}) lacks the recipe/profile that "
                                  f"retraining needs (registered by an older modelpress?): {exc}") from None
    return holder.version, recipe, profile, report


def _json(path: str) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def fresh_data_spec(recipe: dict[str, Any], profile: dict[str, Any], data: Path) -> dict[str, Any]:
    """The recipe's data block pointed at ``data`` by its own data source (same split, labels and
    layout): a table's columns in a fresh table, a fresh corpus, a fresh image folder, a user's
    table in the shipped set's layout."""
    written = recipe["data"]
    return dataset_kind(written["source"]).repoint(written, data, profile)


def retrain_recipe(name: str, data: Path | None, alias: str = "champion") -> tuple[RecipeBase, dict[str, Any], str]:
    """(recipe to run, reference profile, champion version) for retraining ``name``."""
    version, recipe, profile, _ = champion_material(name, alias)
    body = {**recipe, "peers": None, "search": None}
    if data is not None:
        body["data"] = fresh_data_spec(recipe, profile, data)
    body["description"] = f"retraining of {name} @{alias} v{version}"
    # A dump: every field set, the defaults included (a search candidate's may hold moot ones).
    checked = validate_recipe(body, source=f"{name} v{version} recipe (from MLflow)", as_written=False)
    return checked, profile, version


def retrain(name: str, data: Path | None = None, alias: str = "champion", enable_cache: bool = True) -> Any:
    """Validate fresh data against the champion's profile, re-run its recipe, gate, promote."""

    point_mlflow_at(ensure_stack().tracking_uri, export=True)
    recipe, profile, version = retrain_recipe(name, data, alias)
    return run_recipe(recipe, enable_cache=enable_cache, run_name=f"{recipe.name}_retrain_{{date}}_{{time}}",
                      reference_profile=profile)


def schedule_retraining(recipe: RecipeBase) -> dict[str, Any]:
    """Register the recipe's cron schedule with the active orchestrator, or explain why not."""

    schedule = build_schedule(recipe)
    tracking = ensure_stack()
    orchestrator = active_orchestrator()
    if not orchestrator.schedulable:
        raise ModelpressError(unschedulable_message(recipe, orchestrator, recipe.registry.name))
    point_mlflow_at(tracking.tracking_uri, export=True)
    ensure_experiment(tracking, recipe.name)
    from modelpress.pipelines.compress import compress_recipe

    reference = _reference_profile(recipe.registry.name)
    plan = build_plan(recipe, tracking.tracker, experiment=recipe.name, reference_profile=reference)
    # Caching off: each scheduled run must reload the (changed) data and re-train.
    run_name = f"{recipe.name}_scheduled_{{date}}_{{time}}"
    compress_recipe.with_options(schedule=schedule, enable_cache=False, run_name=run_name)(plan=plan)
    return {"orchestrator": orchestrator.name, "flavor": orchestrator.flavor, "cron": schedule.cron_expression,
            "name": schedule.name, "drift_reference": bool(reference)}


def _reference_profile(name: str) -> dict[str, Any] | None:
    try:
        return champion_material(name)[2]
    except ModelpressError:
        return None  # no champion yet: the first scheduled run makes one
