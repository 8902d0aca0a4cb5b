"""The compression pipeline, built from a recipe's plan.

load_data → validate_data → profile_data → load_model (or load_graph) → export_baseline
→ module stages → export_candidate → graph stages → evaluate → evaluate_champion → gate
→ gate_report → publish (MLflow, builds, registry) → promote

Tasks evaluated as PyTorch modules (``Task.evaluated_in``) skip the ONNX export: their
baseline and candidate modules go to evaluation, the champion comparison and promotion.
"""

from __future__ import annotations

from typing import Any

from zenml import pipeline
from zenml.enums import ExecutionMode

from modelpress.core.registry import SOURCES
from modelpress.pipelines.gate_steps import evaluate_champion, gate_report, profile_data
from modelpress.pipelines.steps import (
    evaluate,
    export_model,
    gate,
    graph_stage,
    load_data,
    load_graph,
    load_model,
    module_stage,
    promote,
    publish,
    validate_data,
)
from modelpress.recipe.plan import Plan


def _configured(step_fn: Any, plan: Plan, key: str) -> Any:
    """Apply the recipe's resources (→ ResourceSettings / step operator) to one invocation."""
    from zenml.config import ResourceSettings

    spec = plan.resources.get(key)
    if spec is None:
        return step_fn
    resources = ResourceSettings(cpu_count=spec.cpu, gpu_count=spec.gpu, memory=spec.memory)
    options: dict[str, Any] = {"settings": {"resources": resources}}
    if spec.step_operator:
        options["step_operator"] = spec.step_operator
    return step_fn.with_options(**options)


def _tracked(step_fn: Any, plan: Plan) -> Any:
    from zenml.integrations.mlflow.flavors.mlflow_experiment_tracker_flavor import (
        MLFlowExperimentTrackerSettings,
    )

    settings = MLFlowExperimentTrackerSettings(experiment_name=plan.experiment, tags={"modelpress.recipe": plan.name})
    return step_fn.with_options(experiment_tracker=plan.tracker, settings={"experiment_tracker": settings})


# Fail fast: the first failing step's own exception (e.g. a data validation report) reaches
# the caller instead of a generic "step(s) failed" message.
@pipeline(enable_cache=True, execution_mode=ExecutionMode.FAIL_FAST)
def compress(plan: Plan) -> None:
    task = plan.task
    dataset = _configured(load_data, plan, "load_data")(data=plan.data, fingerprint=plan.data_fingerprint)
    dataset, validation_report = _configured(validate_data, plan, "validate_data")(
        dataset, data=plan.data, task=task)
    # Retraining passes the champion's data profile: drift stops the run before any training.
    profile, _ = profile_data(dataset, data=plan.data, reference=plan.reference_profile, drift=plan.drift)

    in_onnx = task.build().evaluated_in == "onnx"
    model, parity, baseline_onnx, candidate_onnx = None, None, None, None
    reports: list[Any] = []  # the stages' step outputs
    if _is_graph_source(plan):
        baseline_onnx = _configured(load_graph, plan, "load_model")(source=plan.source,
                                                                    fingerprint=plan.model_fingerprint,
                                                                    after="profile_data")
    else:
        model = _configured(load_model, plan, "load_model")(
            source=plan.source, task=task, dataset=dataset, fingerprint=plan.model_fingerprint,
            after="profile_data")
        if in_onnx:
            baseline_onnx, parity = _configured(export_model, plan, "export_onnx")(model, task, dataset,
                                                                                   id="export_baseline")
    baseline_model = model
    for stage in plan.stages:
        if stage.kind == "module":
            model, reports = _configured(module_stage, plan, stage.name)(
                model, dataset, task, reports, stage=stage, seed=plan.seed,
                id=f"stage{stage.position}_{stage.name}")
    candidate_onnx = baseline_onnx
    if in_onnx and plan.has_module_stages:
        candidate_onnx, parity = _configured(export_model, plan, "export_onnx")(model, task, dataset,
                                                                                id="export_candidate")
    for stage in plan.stages:
        if stage.kind == "graph":
            candidate_onnx, reports = _configured(graph_stage, plan, stage.name)(
                candidate_onnx, dataset, task, reports, stage=stage, seed=plan.seed,
                id=f"stage{stage.position}_{stage.name}")
    baseline, candidate = (baseline_onnx, candidate_onnx) if in_onnx else (baseline_model, model)

    evaluation = _configured(evaluate, plan, "evaluate_candidate")(baseline, candidate, dataset, task)
    champion = evaluate_champion(candidate, dataset, task, registry=plan.registry)
    verdict = gate(evaluation, champion, thresholds=plan.gate, statistics=plan.statistics)
    gate_report(evaluation, verdict, champion, task=task, peers=plan.peers, name=plan.name, notes=plan.notes)
    registration = _tracked(publish, plan)(
        plan=plan, evaluation=evaluation, verdict=verdict, parity=parity, stage_reports=reports,
        validation_report=validation_report, champion=champion, dataset=dataset, profile=profile,
        candidate_onnx=candidate_onnx, candidate_model=model)
    _tracked(promote, plan)(registration, verdict, evaluation, champion, candidate, dataset, task,
                            alias=plan.registry.promote_to, tolerance=plan.promotion_tolerance,
                            statistics=plan.statistics)


def _is_graph_source(plan: Plan) -> bool:
    return SOURCES.get(plan.source.name).artifact == "graph"
