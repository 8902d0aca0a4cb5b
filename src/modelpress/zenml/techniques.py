"""One public step per technique, and ``compress`` for a list of stages in recipe syntax.

Each takes the user's model as their own step returned it, the user's DataFrame and the task
(see ``inputs.py``), and the technique's config as its pydantic class or a plain dict (the
stage's options as a recipe writes them: ``steps/<technique>/``). The config is checked when the
pipeline is composed. PyTorch techniques return the module; ``quantize`` (ONNX Runtime int8)
returns the ONNX graph, exporting a module it is given first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import onnx
import pandas as pd
import torch
from pydantic import BaseModel, JsonValue
from zenml import get_step_context, log_metadata

from modelpress.core.handoffs import StageReport
from modelpress.core.registry import get_stage
from modelpress.deploy.materializers import OnnxModelMaterializer, TorchModuleMaterializer
from modelpress.deploy.onnx_export import export_onnx
from modelpress.tasks.context import StageContext
from modelpress.zenml.checked import StepParameterError, public_step, validated
from modelpress.zenml.history import attach, carried
from modelpress.zenml.inputs import Prepared, SplitArg, TaskArg, check_task, prepare

StageConfigArg = dict[str, JsonValue] | BaseModel | None
#: a stage in recipe syntax: ``{"prune": {"sparsity": 0.3}}`` or ``"quantize"``
StageArg = dict[str, StageConfigArg] | str
MODULE, GRAPH = "model", "onnx_model"


def _stage_check(stage: str) -> Any:
    def check(where: str, parameters: Mapping[str, Any]) -> None:
        check_task(where, parameters)
        if "config" in parameters:
            validated(get_stage(stage).config, parameters["config"], f"{where}: config")

    return check


def _here() -> str:
    return get_step_context().step_name


def _apply(stage: str, model: Any, prepared: Prepared, config: Any, seed: int,
           history: list[StageReport]) -> tuple[Any, list[StageReport]]:
    spec = get_stage(stage)
    settings = validated(spec.config, config, f"{_here()}: config")
    if spec.kind == "graph" and isinstance(model, torch.nn.Module):
        model = export_onnx(model, prepared.task, prepared.eval_rows.iloc[:256])
    # The input model was materialized for this step alone: the stage may change it in place.
    context = StageContext(task=prepared.task, data=prepared.frame, seed=seed, owns_model=True)
    result = spec.apply(model, settings, context)
    facts = dict(context.report)
    log_metadata(metadata={stage: facts})
    return result, [*history, StageReport(position=len(history) + 1, stage=stage, facts=facts)]


def _technique(stage: str, model: Any, data: pd.DataFrame, task: TaskArg, config: Any, split: SplitArg,
               seed: int, eval_data: pd.DataFrame | None, output: str) -> Any:
    prepared = prepare(data, task, _here(), split, seed, eval_data)
    result, history = _apply(stage, model, prepared, config, seed, carried("model"))
    attach(output, history)
    return result


@public_step(check=_stage_check("prune"), output_materializers={MODULE: TorchModuleMaterializer})
def prune(model: torch.nn.Module, data: pd.DataFrame, task: TaskArg, config: StageConfigArg = None,
          split: SplitArg = None, seed: int = 0,
          eval_data: pd.DataFrame | None = None) -> Annotated[torch.nn.Module, MODULE]:
    """Structured pruning with Torch-Pruning (config: ``steps/prune``), fine-tuned back if asked."""
    return _technique("prune", model, data, task, config, split, seed, eval_data, MODULE)


@public_step(check=_stage_check("quantize"), output_materializers={GRAPH: OnnxModelMaterializer})
def quantize(model: torch.nn.Module | onnx.ModelProto, data: pd.DataFrame, task: TaskArg,
             config: StageConfigArg = None, split: SplitArg = None, seed: int = 0,
             eval_data: pd.DataFrame | None = None) -> Annotated[onnx.ModelProto, GRAPH]:
    """ONNX Runtime int8 quantization (config: ``steps/quantize``); a module is exported first."""
    return _technique("quantize", model, data, task, config, split, seed, eval_data, GRAPH)


@public_step(check=_stage_check("weight-quantize"), output_materializers={MODULE: TorchModuleMaterializer})
def weight_quantize(model: torch.nn.Module, data: pd.DataFrame, task: TaskArg, config: StageConfigArg = None,
                    split: SplitArg = None, seed: int = 0,
                    eval_data: pd.DataFrame | None = None) -> Annotated[torch.nn.Module, MODULE]:
    """Weight-only int8/int4 of the PyTorch module: RTN, GPTQ or AWQ (config: ``steps/quantize``)."""
    return _technique("weight-quantize", model, data, task, config, split, seed, eval_data, MODULE)


@public_step(check=_stage_check("lowrank"), output_materializers={MODULE: TorchModuleMaterializer})
def lowrank(model: torch.nn.Module, data: pd.DataFrame, task: TaskArg, config: StageConfigArg = None,
            split: SplitArg = None, seed: int = 0,
            eval_data: pd.DataFrame | None = None) -> Annotated[torch.nn.Module, MODULE]:
    """Low-rank factorization of linear layers (config: ``steps/lowrank``)."""
    return _technique("lowrank", model, data, task, config, split, seed, eval_data, MODULE)


@public_step(check=_stage_check("distill"), output_materializers={MODULE: TorchModuleMaterializer})
def distill(model: torch.nn.Module, data: pd.DataFrame, task: TaskArg, config: StageConfigArg = None,
            split: SplitArg = None, seed: int = 0,
            eval_data: pd.DataFrame | None = None) -> Annotated[torch.nn.Module, MODULE]:
    """Knowledge distillation into a smaller student (config: ``steps/distill``)."""
    return _technique("distill", model, data, task, config, split, seed, eval_data, MODULE)


@public_step(check=_stage_check("finetune"), output_materializers={MODULE: TorchModuleMaterializer})
def finetune(model: torch.nn.Module, data: pd.DataFrame, task: TaskArg, config: StageConfigArg = None,
             split: SplitArg = None, seed: int = 0,
             eval_data: pd.DataFrame | None = None) -> Annotated[torch.nn.Module, MODULE]:
    """Fine-tuning, LoRA through PEFT or in full (config: ``steps/finetune``)."""
    return _technique("finetune", model, data, task, config, split, seed, eval_data, MODULE)


def stage_entries(stages: Any, where: str) -> list[tuple[str, Any]]:
    """``[(stage name, config), …]`` from recipe syntax; one line naming a bad entry."""
    if not isinstance(stages, list) or not stages:
        raise StepParameterError(f"{where}: stages: a list of stages, e.g. [{{\"prune\": {{\"sparsity\": 0.3}}}}]")
    entries = []
    for i, entry in enumerate(stages):
        if isinstance(entry, str):
            entry = {entry: None}
        if not isinstance(entry, dict) or len(entry) != 1:
            raise StepParameterError(f"{where}: stages[{i}]: one stage name with its options")
        (name, config), = entry.items()
        try:
            spec = get_stage(name)
        except KeyError as exc:  # the registry's message names the known stages
            raise StepParameterError(f"{where}: stages[{i}]: {exc.args[0]}") from None
        entries.append((name, validated(spec.config, config, f"{where}: stages[{i}].{name}")))
    return entries


def _check_compress(where: str, parameters: Mapping[str, Any]) -> None:
    check_task(where, parameters)
    if "stages" in parameters:
        stage_entries(parameters["stages"], where)


@public_step(check=_check_compress, output_materializers={"compressed_model": (TorchModuleMaterializer,
                                                                                 OnnxModelMaterializer)})
def compress(model: torch.nn.Module | onnx.ModelProto, data: pd.DataFrame, task: TaskArg,
             stages: list[StageArg], split: SplitArg = None, seed: int = 0,
             eval_data: pd.DataFrame | None = None,
             ) -> Annotated[torch.nn.Module | onnx.ModelProto, "compressed_model"]:
    """Every stage in order, in one step: ``stages=[{"prune": {"sparsity": 0.3}}, "quantize"]``.
    PyTorch stages run on the module; the first ONNX stage exports it."""
    prepared = prepare(data, task, _here(), split, seed, eval_data)
    history = carried("model")
    for name, config in stage_entries(stages, _here()):
        model, history = _apply(name, model, prepared, config, seed, history)
    attach("compressed_model", history)
    return model


#: the public step of each built-in technique, by the stage name a recipe uses
TECHNIQUE_STEPS = {"prune": prune, "quantize": quantize, "weight-quantize": weight_quantize,
                   "lowrank": lowrank, "distill": distill, "finetune": finetune}
