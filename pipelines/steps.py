"""The ZenML steps of the compression pipeline: thin wrappers around modelpress' functions.

Parameters are plain JSON (re-validated here) so that ZenML can cache on them; models flow as
artifacts (PyTorch modules through ZenML's PyTorch materializer, ONNX graphs through
``modelpress.deploy.materializers``).
"""

from __future__ import annotations

from typing import Annotated, Any

import onnx
import pandas as pd
import torch
from pydantic import TypeAdapter
from zenml import log_metadata, step

from modelpress.context import StageContext
from modelpress.data import assign_splits, describe, load_frame
from modelpress.evaluate import compare_onnx
from modelpress.gate import run_gate
from modelpress.recipe import DataSource, ModelSource, Threshold
from modelpress.registry import get_stage
from modelpress.tasks import TaskSpec
from modelpress.validation import validate_frame

from ..deploy.materializers import OnnxModelMaterializer
from ..deploy.onnx_export import check_parity, export_onnx

# An exporter bug shows on any batch; a few hundred rows catch it without a second full eval.
PARITY_ROWS = 256

_data = TypeAdapter(DataSource)
_model = TypeAdapter(ModelSource)


def _task(spec: dict[str, Any]) -> Any:
    return TaskSpec(**{**spec, "image_shape": tuple(spec["image_shape"]) if spec.get("image_shape") else None}).build()


@step
def load_data(data: dict[str, Any], fingerprint: str) -> Annotated[pd.DataFrame, "dataset"]:
    """Load the dataset and mark its train / calibration / eval rows (``fingerprint`` keys the cache)."""
    spec = _data.validate_python(data)
    return assign_splits(load_frame(spec), spec.split, spec.seed, spec.limit)


@step
def validate_data(dataset: pd.DataFrame, data: dict[str, Any]) -> tuple[
    Annotated[pd.DataFrame, "validated_dataset"], Annotated[dict[str, Any], "validation_report"]
]:
    """great-expectations suite from the data spec; labels are then encoded as class indices."""
    schema = describe(_data.validate_python(data))
    min_rows = max(20, int(dataset["split"].value_counts().min()))
    report = validate_frame(dataset.drop(columns="split"), schema, min_rows=min_rows)
    labels = list(schema.labels) if schema.labels is not None else sorted(dataset["label"].unique().tolist())
    index = {label: i for i, label in enumerate(labels)}
    encoded = dataset.assign(label=dataset["label"].map(index).astype("int64"))
    report["labels"] = [str(label) for label in labels]
    for split, count in dataset["split"].value_counts().items():
        report[f"rows_{split}"] = int(count)
    log_metadata(metadata={"validation": report})
    return encoded, report


@step
def load_model(model: dict[str, Any], task: dict[str, Any], dataset: pd.DataFrame,
               fingerprint: str) -> Annotated[torch.nn.Module, "baseline_model"]:
    """Load (and for package models, train) the baseline model."""
    from modelpress.model_sources import load_baseline

    return load_baseline(_model.validate_python(model), _task(task), dataset)


@step(output_materializers={"onnx_model": OnnxModelMaterializer})
def export_model(model: torch.nn.Module, task: dict[str, Any], dataset: pd.DataFrame) -> tuple[
    Annotated[onnx.ModelProto, "onnx_model"], Annotated[dict[str, float], "parity"]
]:
    """Export to ONNX and check it reproduces PyTorch on (the start of) the eval split."""
    task_obj = _task(task)
    evaluation = dataset[dataset["split"] == "eval"].iloc[:PARITY_ROWS]
    exported = export_onnx(model, task_obj, evaluation)
    parity = check_parity(model, exported, task_obj, evaluation)
    log_metadata(metadata={"parity": parity})
    return exported, parity


def _apply(model: Any, dataset: pd.DataFrame, task: dict[str, Any], reports: dict[str, Any],
           stage: str, config: dict[str, Any], position: int, seed: int) -> tuple[Any, dict[str, Any]]:
    spec = get_stage(stage)
    context = StageContext(task=_task(task), data=dataset, seed=seed)
    result = spec.apply(model, spec.config.model_validate(config), context)
    log_metadata(metadata={f"{stage}": context.report})
    return result, {**reports, f"{position}.{stage}": context.report}


@step
def module_stage(model: torch.nn.Module, dataset: pd.DataFrame, task: dict[str, Any],
                 reports: dict[str, Any], stage: str, config: dict[str, Any], position: int,
                 seed: int = 0) -> tuple[Annotated[torch.nn.Module, "model"], Annotated[dict[str, Any], "stage_reports"]]:
    """A registered stage that transforms the PyTorch model."""
    model, reports = _apply(model, dataset, task, reports, stage, config, position, seed)
    return model, reports  # a literal tuple: ZenML reads the return statement to count outputs


@step(output_materializers={"onnx_model": OnnxModelMaterializer})
def graph_stage(model: onnx.ModelProto, dataset: pd.DataFrame, task: dict[str, Any],
                reports: dict[str, Any], stage: str, config: dict[str, Any], position: int,
                seed: int = 0) -> tuple[Annotated[onnx.ModelProto, "onnx_model"], Annotated[dict[str, Any], "stage_reports"]]:
    """A registered stage that transforms the exported ONNX graph."""
    model, reports = _apply(model, dataset, task, reports, stage, config, position, seed)
    return model, reports  # a literal tuple: ZenML reads the return statement to count outputs


@step
def evaluate(baseline: onnx.ModelProto, candidate: onnx.ModelProto, dataset: pd.DataFrame,
             task: dict[str, Any]) -> Annotated[dict[str, dict[str, float]], "evaluation"]:
    """Quality, fidelity, size and latency of baseline and candidate, both in ONNX Runtime."""
    from modelpress.memory import add_peak_memory

    task_obj, eval_rows = _task(task), dataset[dataset["split"] == "eval"]
    report = compare_onnx(baseline, candidate, task_obj, eval_rows)
    report = add_peak_memory(report, {"baseline": baseline, "candidate": candidate}, task_obj.timing_batch(eval_rows, 32))
    log_metadata(metadata={"evaluation": report})
    return report


@step
def gate(evaluation: dict[str, dict[str, float]], champion: dict[str, Any],
         thresholds: dict[str, Any]) -> Annotated[dict[str, Any], "gate_verdict"]:
    """Apply the recipe's thresholds; the verdict is data, so a failed gate still gets recorded."""
    verdict = run_gate({k: Threshold.model_validate(v) for k, v in thresholds.items()}, evaluation, champion)
    log_metadata(metadata={"gate": {"passed": verdict["passed"], "reason": verdict["reason"]}})
    return verdict


@step(enable_cache=False)
def publish(candidate_model: torch.nn.Module, candidate_onnx: onnx.ModelProto, evaluation: dict[str, Any],
            verdict: dict[str, Any], parity: dict[str, float], stage_reports: dict[str, Any],
            validation_report: dict[str, Any], recipe: dict[str, Any],
            tags: dict[str, str], champion: dict[str, Any] | None = None, profile: dict[str, Any] | None = None,
            peers: list[dict[str, Any]] | None = None) -> Annotated[dict[str, Any], "registration"]:
    """Log everything to MLflow and register the ONNX model; @challenger if the gate passed."""
    from modelpress.publish import log_and_register

    registration = log_and_register(candidate_model, candidate_onnx, evaluation, verdict, parity,
                                    stage_reports, validation_report, recipe, tags,
                                    champion=champion, profile=profile, peers=peers)
    log_metadata(metadata={"registration": registration})
    return registration


@step(enable_cache=False)
def promote(registration: dict[str, Any], verdict: dict[str, Any], evaluation: dict[str, Any],
            dataset: pd.DataFrame, task: dict[str, Any], registry: dict[str, Any]) -> Annotated[dict[str, Any], "promotion"]:
    """Move the champion alias only if the gate passed and the candidate is no worse."""
    from modelpress.publish import promote_if_better

    outcome = promote_if_better(registration, verdict, evaluation, dataset[dataset["split"] == "eval"],
                                _task(task), registry)
    log_metadata(metadata={"promotion": outcome})
    return outcome


