"""The compression pipeline, built from a recipe's plan out of the public steps.

load_data → validate_data → profile_data → load_model (or load_graph) → export_baseline
→ module stages → export_candidate → graph stages → evaluate → evaluate_champion → gate
→ gate_report → publish (MLflow, builds, registry) → promote

From the stages on, every step is a public step of ``modelpress.zenml`` (a stage is its
technique's step, ``prune``, ``quantize``, ...; ``evaluate``; ``accuracy_gate`` as ``gate``;
``register`` as ``publish``; ``promote``), called as a user's own pipeline calls them, with the
recipe's frame already split and its resolved task. Tasks evaluated as PyTorch modules
(``Task.evaluated_in``) skip the ONNX export: their baseline and candidate modules go to
evaluation, the champion comparison and promotion.
"""

from __future__ import annotations

from typing import Any

from zenml import pipeline
from zenml.enums import ExecutionMode

from modelpress.core.handoffs import StagePlan
from modelpress.core.registry import SOURCES
from modelpress.pipelines.gate_steps import evaluate_champion, gate_report, profile_data
from modelpress.pipelines.plan import publication_of
from modelpress.pipelines.steps import export_model, load_data, load_graph, load_model, validate_data
from modelpress.recipe.plan import Plan
from modelpress.zenml import TECHNIQUE_STEPS, accuracy_gate, compress, evaluate, promote, register


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


def _stage(stage: StagePlan, plan: Plan, model: Any, dataset: Any) -> Any:
    """The stage's public technique step (``compress`` with the one stage for a plugin's)."""
    step_fn = TECHNIQUE_STEPS.get(stage.name)
    options: dict[str, Any] = {"id": f"stage{stage.position}_{stage.name}"}
    if step_fn is None:
        return _configured(compress, plan, stage.name)(model, dataset, plan.task, stages=[{stage.name: stage.config}],
                                                       seed=plan.seed, **options)
    return _configured(step_fn, plan, stage.name)(model, dataset, plan.task, config=stage.config, seed=plan.seed,
                                                  **options)


# Fail fast: the first failing step's own exception (e.g. a data validation report) reaches
# the caller instead of a generic "step(s) failed" message.
@pipeline(name="compress", enable_cache=True, execution_mode=ExecutionMode.FAIL_FAST)
def compress_recipe(plan: Plan) -> None:
    task = plan.task
    dataset = _configured(load_data, plan, "load_data")(data=plan.data, fingerprint=plan.data_fingerprint)
    dataset, validation_report = _configured(validate_data, plan, "validate_data")(
        dataset, data=plan.data, task=task)
    # Retraining passes the champion's data profile: drift stops the run before any training.
    profile, _ = profile_data(dataset, data=plan.data, reference=plan.reference_profile, drift=plan.drift)

    in_onnx = task.build().evaluated_in == "onnx"
    model, parity, baseline_onnx = None, None, None
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
            model = _stage(stage, plan, model, dataset)
    candidate_onnx = baseline_onnx
    if in_onnx and plan.has_module_stages:
        candidate_onnx, parity = _configured(export_model, plan, "export_onnx")(model, task, dataset,
                                                                                id="export_candidate")
    for stage in plan.stages:
        if stage.kind == "graph":
            candidate_onnx = _stage(stage, plan, candidate_onnx, dataset)
    baseline, candidate = (baseline_onnx, candidate_onnx) if in_onnx else (baseline_model, model)

    evaluation = _configured(evaluate, plan, "evaluate_candidate")(baseline, candidate, dataset, task)
    champion = evaluate_champion(candidate, dataset, task, registry=plan.registry)
    verdict = accuracy_gate(evaluation, thresholds=plan.gate, task=task, champion=champion,
                            statistics=plan.statistics, id="gate")
    gate_report(evaluation, verdict, champion, task=task, peers=plan.peers, name=plan.name, notes=plan.notes)
    registration = _tracked(register, plan)(
        candidate, evaluation, verdict, dataset, task, registry=plan.registry, builds=plan.builds, module=model,
        champion=champion, parity=parity, validation_report=validation_report, profile=profile,
        publication=publication_of(plan), id="publish")
    _tracked(promote, plan)(registration, verdict, evaluation, candidate, dataset, task,
                            alias=plan.registry.promote_to, tolerance=plan.promotion_tolerance, champion=champion,
                            statistics=plan.statistics)


def _is_graph_source(plan: Plan) -> bool:
    return SOURCES.get(plan.source.name).artifact == "graph"
