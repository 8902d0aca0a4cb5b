"""The compression pipeline, built from a recipe's plan.

load_data → validate_data → load_model → export_baseline → module stages → export_candidate
→ graph stages → evaluate → gate → publish (MLflow + registry) → promote
"""

from __future__ import annotations

from typing import Any

from zenml import pipeline
from zenml.enums import ExecutionMode

from .gate_steps import evaluate_champion, gate_report, profile_data
from .steps import (
    evaluate,
    export_model,
    gate,
    graph_stage,
    load_data,
    load_model,
    module_stage,
    promote,
    publish,
    validate_data,
)


def _configured(step_fn: Any, plan: dict[str, Any], key: str) -> Any:
    """Apply the recipe's resources (→ ResourceSettings / step operator) to one invocation."""
    from zenml.config import ResourceSettings

    spec = plan["resources"].get(key)
    if not spec:
        return step_fn
    resources = ResourceSettings(cpu_count=spec.get("cpu"), gpu_count=spec.get("gpu"), memory=spec.get("memory"))
    options: dict[str, Any] = {"settings": {"resources": resources}}
    if spec.get("step_operator"):
        options["step_operator"] = spec["step_operator"]
    return step_fn.with_options(**options)


def _tracked(step_fn: Any, plan: dict[str, Any]) -> Any:
    from zenml.integrations.mlflow.flavors.mlflow_experiment_tracker_flavor import (
        MLFlowExperimentTrackerSettings,
    )

    settings = MLFlowExperimentTrackerSettings(experiment_name=plan["experiment"], tags={"modelpress.recipe": plan["recipe"]["name"]})
    return step_fn.with_options(experiment_tracker=plan["tracker"], settings={"experiment_tracker": settings})


def _promotion_rules(plan: dict[str, Any]) -> dict[str, Any]:
    """The registry spec, with the gate's accuracy.max_champion_drop as promotion tolerance."""
    registry = dict(plan["recipe"]["registry"])
    accuracy = plan["recipe"]["gate"].get("accuracy") or {}
    if accuracy.get("max_champion_drop") is not None:
        registry["tolerance"] = accuracy["max_champion_drop"]
    return registry


# Fail fast: the first failing step's own exception (e.g. a data validation report) reaches
# the caller instead of a generic "step(s) failed" message.
@pipeline(enable_cache=True, execution_mode=ExecutionMode.FAIL_FAST)
def compress(plan: dict[str, Any]) -> None:
    task, data = plan["task"], plan["recipe"]["data"]
    dataset = _configured(load_data, plan, "load_data")(data=data, fingerprint=plan["data_fingerprint"])
    dataset, validation_report = _configured(validate_data, plan, "validate_data")(dataset, data=data)
    # Retraining passes the champion's data profile: drift stops the run before any training.
    profile, _ = profile_data(dataset, reference=plan.get("reference_profile"), drift=plan["recipe"].get("drift", {}))
    model = _configured(load_model, plan, "load_model")(
        model=plan["recipe"]["model"], task=task, dataset=dataset, fingerprint=plan["model_fingerprint"],
        after="profile_data")
    baseline_onnx, parity = _configured(export_model, plan, "export_onnx")(model, task, dataset, id="export_baseline")

    reports: Any = {}
    for position, stage in enumerate(plan["stages"], start=1):
        if stage["kind"] == "module":
            model, reports = _configured(module_stage, plan, stage["name"])(
                model, dataset, task, reports, stage=stage["name"], config=stage["config"],
                position=position, seed=plan["seed"], id=f"stage{position}_{stage['name']}")
    candidate_onnx = baseline_onnx
    if any(s["kind"] == "module" for s in plan["stages"]):
        candidate_onnx, parity = _configured(export_model, plan, "export_onnx")(model, task, dataset, id="export_candidate")
    for position, stage in enumerate(plan["stages"], start=1):
        if stage["kind"] == "graph":
            candidate_onnx, reports = _configured(graph_stage, plan, stage["name"])(
                candidate_onnx, dataset, task, reports, stage=stage["name"], config=stage["config"],
                position=position, seed=plan["seed"], id=f"stage{position}_{stage['name']}")

    evaluation = _configured(evaluate, plan, "evaluate_candidate")(baseline_onnx, candidate_onnx, dataset, task)
    registry = plan["recipe"]["registry"]
    champion = evaluate_champion(candidate_onnx, dataset, task, registry=registry)
    verdict = gate(evaluation, champion, thresholds=plan["recipe"]["gate"])
    gate_report(evaluation, verdict, champion, peers=plan.get("peers", []), name=plan["recipe"]["name"])
    registration = _tracked(publish, plan)(model, candidate_onnx, evaluation, verdict, parity, reports,
                                           validation_report, recipe=plan["recipe"], tags=plan["tags"],
                                           champion=champion, profile=profile, peers=plan.get("peers", []))
    _tracked(promote, plan)(registration, verdict, evaluation, dataset, task, registry=_promotion_rules(plan))
