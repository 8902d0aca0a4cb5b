"""The recipe's own ZenML steps: what only a recipe has (its data and model sources, the
great-expectations suite, the baseline's ONNX export with its parity check).

Everything after them (the techniques, evaluation, the gate, registration and promotion) is
the public steps of ``modelpress.zenml``, which ``compress.py`` calls as a user's pipeline would.
Parameters and small outputs are typed records (``modelpress.core.handoffs``: JSON, so ZenML caches
on them); models flow as artifacts (PyTorch modules, TorchScript included, through
``TorchModuleMaterializer``; ONNX graphs through ``OnnxModelMaterializer``). A registered kind
(source, data source) arrives as a :class:`~modelpress.core.handoffs.Ref` and is validated
again by its registered config class here.
"""

from __future__ import annotations

from typing import Annotated, Any

import onnx
import pandas as pd
import torch
from zenml import log_metadata, step

from modelpress.core.handoffs import (
    DataReport,
    Parity,
    Ref,
)
from modelpress.core.registry import SOURCES
from modelpress.datasets.base import Dataset, dataset_config
from modelpress.datasets.splits import assign_splits, encode_labels, labels_as_text
from modelpress.datasets.validation import validate_corpus, validate_frame
from modelpress.deploy.materializers import OnnxModelMaterializer, TorchModuleMaterializer
from modelpress.deploy.onnx_export import check_parity, export_onnx
from modelpress.tasks import TaskSpec
from modelpress.zenml.history import attach, carried

# An exporter bug shows on any batch; a few hundred rows catch it without a second full eval.
PARITY_ROWS = 256


def eval_rows(dataset: pd.DataFrame) -> pd.DataFrame:
    return dataset[dataset["split"] == "eval"]


def source_config(source: Ref) -> Any:
    return SOURCES.get(source.name).model_validate(source.config)


def data_config(data: Ref) -> Dataset:
    return dataset_config(data.name, data.config)


@step
def load_data(data: Ref, fingerprint: str) -> Annotated[pd.DataFrame, "dataset"]:
    """Load the dataset and mark its train / calibration / eval rows (``fingerprint`` keys the cache)."""
    config = data_config(data)
    return assign_splits(config.load(), config.split, config.seed, config.limit)


@step
def validate_data(dataset: pd.DataFrame, data: Ref, task: TaskSpec) -> tuple[
    Annotated[pd.DataFrame, "validated_dataset"], Annotated[DataReport, "validation_report"]
]:
    """great-expectations suite from the data spec; labels are then encoded as class indices
    in the task's order (the model's ``id2label``, the declared labels, or sorted). A task that
    takes no labels (a causal LM) gets the corpus suite and a frame of documents alone."""
    task_obj = task.build()
    schema = data_config(data).describe()
    if not task_obj.labelled:
        documents = dataset.drop(columns=[c for c in ("label",) if c in dataset.columns])
        documents = task_obj.fit_splits(documents, data_config(data).split)  # sizes in sequences / tokens
        result = validate_corpus(documents, schema)
        task_obj.check_data(documents)
        report = DataReport(success=True, expectations=result["expectations"], rows=result["rows"],
                            rows_per_split=_split_counts(documents), sizes=task_obj.split_sizes(documents))
        log_metadata(metadata={"validation": report.model_dump(mode="json")})
        return documents, report
    labels = list(task.labels) if task.labels is not None else None
    min_rows = max(20, int(dataset["split"].value_counts().min()))
    if labels is not None:  # the model's classes (or the declared set) bound the labels
        schema = schema.with_labels(labels)
    result = validate_frame(labels_as_text(dataset).drop(columns="split"), schema, min_rows=min_rows)
    encoded, names = encode_labels(dataset, labels)
    task_obj.check_data(encoded)
    report = DataReport(success=True, expectations=result["expectations"], rows=result["rows"], labels=names,
                        rows_per_split=_split_counts(dataset), images=result.get("images"))
    log_metadata(metadata={"validation": report.model_dump(mode="json")})
    return encoded, report


def _split_counts(dataset: pd.DataFrame) -> dict[str, int]:
    return {str(k): int(v) for k, v in dataset["split"].value_counts().items()}


@step(output_materializers={"baseline_model": TorchModuleMaterializer})
def load_model(source: Ref, task: TaskSpec, dataset: pd.DataFrame,
               fingerprint: str) -> Annotated[torch.nn.Module, "baseline_model"]:
    """Load (and for package models, train) the baseline; it must fit the data's labels."""
    config = source_config(source)
    task_obj = task.build()
    model = config.load(task_obj, dataset)
    task_obj.check_model(model, eval_rows(dataset), where=f"model ({_described(config)})")
    return model


@step(output_materializers={"onnx_model": OnnxModelMaterializer})
def load_graph(source: Ref, fingerprint: str) -> Annotated[onnx.ModelProto, "onnx_model"]:
    """An ONNX source: the graph is the baseline (only graph stages follow)."""
    return source_config(source).load(None, None)


def _described(config: Any) -> str:
    path = getattr(config, "path", None)
    return f"model.path {path}" if path is not None else f"model.source {config.source}"


@step(output_materializers={"onnx_model": OnnxModelMaterializer})
def export_model(model: torch.nn.Module, task: TaskSpec, dataset: pd.DataFrame) -> tuple[
    Annotated[onnx.ModelProto, "onnx_model"], Annotated[Parity, "parity"]
]:
    """Export to ONNX and check it reproduces PyTorch on (the start of) the eval split."""
    task_obj = task.build()
    evaluation = eval_rows(dataset).iloc[:PARITY_ROWS]
    exported = export_onnx(model, task_obj, evaluation)
    parity = check_parity(model, exported, task_obj, evaluation)
    log_metadata(metadata={"parity": parity.model_dump()})
    attach("onnx_model", carried("model"))  # the graph carries on the module's stage history
    return exported, parity
