"""``evaluate`` and ``accuracy_gate``: every metric the task measures, then the thresholds."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import onnx
import pandas as pd
import torch
from pydantic import JsonValue
from zenml import get_step_context, log_metadata

from modelpress.core.handoffs import ChampionReport, Evaluation, Verdict
from modelpress.deploy.onnx_export import export_onnx
from modelpress.gate.rules import run_gate
from modelpress.settings.blocks import Statistics, Threshold
from modelpress.zenml.checked import StepParameterError, public_step, validated
from modelpress.zenml.inputs import Prepared, SplitArg, TaskArg, check_task, prepare, task_parts

ThresholdsArg = dict[str, dict[str, JsonValue] | Threshold]
StatisticsArg = dict[str, JsonValue] | Statistics | None


def as_evaluated(model: Any, prepared: Prepared) -> Any:
    """``model`` as the task evaluates it: a module exported to ONNX for a task evaluated in ONNX
    Runtime; a graph where the task evaluates modules is refused with one line."""
    task = prepared.task
    if task.evaluated_in == "onnx" and isinstance(model, torch.nn.Module):
        return export_onnx(model, task, prepared.eval_rows.iloc[:256])
    if task.evaluated_in == "torch" and isinstance(model, onnx.ModelProto):
        raise StepParameterError(f"{get_step_context().step_name}: a {task.name} model is evaluated as a "
                                 "PyTorch module; pass the module, not an ONNX graph")
    return model


@public_step(check=check_task)
def evaluate(baseline: torch.nn.Module | onnx.ModelProto, candidate: torch.nn.Module | onnx.ModelProto,
             data: pd.DataFrame, task: TaskArg, split: SplitArg = None, seed: int = 0,
             eval_data: pd.DataFrame | None = None) -> Annotated[Evaluation, "evaluation"]:
    """Every metric the task measures (quality, fidelity, size, latency) for the baseline and the
    candidate on the same eval rows, both run where the task runs them (ONNX Runtime for the
    classifiers: a module is exported first)."""
    prepared = prepare(data, task, get_step_context().step_name, split, seed, eval_data)
    evaluation = prepared.task.evaluate(as_evaluated(baseline, prepared), as_evaluated(candidate, prepared),
                                        prepared.eval_rows)
    log_metadata(metadata={"evaluation": evaluation.model_dump(exclude={"samples"})})
    return evaluation


def measured_by(task: TaskArg, where: str) -> tuple[str, tuple[str, ...]]:
    """The task's name and the metrics it measures with its options (a causal LM's task files add
    ``tasks.NAME.acc``)."""
    task_class, options, _ = task_parts(task, where)
    config = task_class.Config.model_validate({"name": task_class.name, **options})
    return task_class.name, tuple(m.name for m in task_class.configured_metrics(config))


def thresholds_of(raw: Any, measured: tuple[str, tuple[str, ...]] | None, where: str) -> dict[str, Threshold]:
    """The thresholds, each checked; with what the task measures known, every metric must be one of it."""
    if not isinstance(raw, dict):  # empty: no bounds (a recipe without a gate: every candidate passes)
        raise StepParameterError(f"{where}: thresholds: a mapping of metric → bounds, e.g. "
                                 "{\"accuracy\": {\"max_drop\": 0.01}}")
    if measured is not None:
        name, metrics = measured
        for metric in raw:
            if metric not in metrics:
                raise StepParameterError(f"{where}: thresholds.{metric}: a {name} task measures {', '.join(metrics)}")
    return {metric: validated(Threshold, bounds, f"{where}: thresholds.{metric}") for metric, bounds in raw.items()}


def _check_gate(where: str, parameters: Mapping[str, Any]) -> None:
    measured = measured_by(parameters["task"], where) if parameters.get("task") is not None else None
    if "thresholds" in parameters:
        thresholds_of(parameters["thresholds"], measured, where)
    if parameters.get("statistics") is not None:
        validated(Statistics, parameters["statistics"], f"{where}: statistics")


@public_step(check=_check_gate)
def accuracy_gate(evaluation: Evaluation, thresholds: ThresholdsArg, task: TaskArg | None = None,
                  champion: ChampionReport | None = None,
                  statistics: StatisticsArg = None) -> Annotated[Verdict, "gate_verdict"]:
    """The thresholds applied to ``evaluation`` (``{"accuracy": {"max_drop": 0.01}}``, as a
    recipe's ``gate:``) on paired intervals as ``statistics`` says (a recipe's ``statistics:``
    block; the default: 95 % paired bootstrap, inconclusive fails); with ``task`` given the
    thresholds are checked against its metrics when the pipeline is composed. The verdict is
    data: a failed gate is recorded, not raised."""
    where = get_step_context().step_name
    measured = measured_by(task, where) if task is not None else (evaluation.task, tuple(evaluation.candidate))
    settings = validated(Statistics, statistics, f"{where}: statistics")
    verdict = run_gate(thresholds_of(thresholds, measured, where), evaluation, champion, statistics=settings)
    log_metadata(metadata={"gate": {"passed": verdict.passed, "reason": verdict.reason,
                                    "inconclusive": verdict.inconclusive}})
    return verdict
