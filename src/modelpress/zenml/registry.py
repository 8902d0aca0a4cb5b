"""``register``, ``promote`` and ``export_build``: the MLflow model registry end of a pipeline.

They record into the active MLflow run when the step has the stack's MLflow experiment tracker
(``register.with_options(experiment_tracker="...")``, as ``modelpress run`` configures it);
without one, into a run of their own in the experiment named after the registered model, on
the tracking server of the active stack's MLflow tracker (or ``MLFLOW_TRACKING_URI``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Annotated, Any

import onnx
import pandas as pd
import torch
from pydantic import Field, JsonValue, TypeAdapter
from zenml import get_step_context, log_metadata

from modelpress.builds import BuildContext
from modelpress.core.handoffs import (
    BuildReport,
    ChampionReport,
    DataReport,
    Evaluation,
    Parity,
    Promotion,
    Ref,
    Registration,
    Verdict,
)
from modelpress.core.registry import BUILDS
from modelpress.release.publish import Publication, log_and_register, promote_if_better
from modelpress.settings.blocks import ModelRegistrySettings, Statistics
from modelpress.tracking.uris import point_mlflow_at, tracking_uri_from_stack
from modelpress.zenml.checked import StepParameterError, public_step, validated
from modelpress.zenml.evaluation import StatisticsArg, as_evaluated
from modelpress.zenml.history import carried
from modelpress.zenml.inputs import SplitArg, TaskArg, check_task, prepare

#: the registered model: its name, or the recipe's ``registry:`` block
RegistryArg = str | dict[str, JsonValue] | ModelRegistrySettings
#: a build in recipe syntax: ``"onnx"`` or ``{"name": "triton-repository", ...options}``, or a
#: resolved Ref (tried first: a Ref reaches a step as its JSON, which is also a valid dict)
BuildArg = Annotated[Ref | dict[str, JsonValue] | str, Field(union_mode="left_to_right")]
_BUILD_ARG: TypeAdapter[Ref | dict[str, Any] | str] = TypeAdapter(BuildArg)


def registry_of(raw: Any, where: str) -> ModelRegistrySettings:
    return validated(ModelRegistrySettings, {"name": raw} if isinstance(raw, str) else raw, f"{where}: registry")


def build_ref(raw: Any, where: str) -> Ref:
    """A build by name with its options, checked by the build's registered config."""
    raw = _BUILD_ARG.validate_python(raw)
    name: Any
    if isinstance(raw, Ref):
        name, options = raw.name, dict(raw.config)
    else:
        options = {"name": raw} if isinstance(raw, str) else dict(raw)
        name = options.pop("name", None)
    try:
        config = BUILDS.get(str(name))
    except KeyError as exc:  # the registry's message names the known builds
        raise StepParameterError(f"{where}: {exc.args[0]}") from None
    return Ref(name=str(name), config=validated(config, options, where).model_dump(mode="json"))


def _check_register(where: str, parameters: Mapping[str, Any]) -> None:
    check_task(where, parameters)
    if "registry" in parameters:
        registry_of(parameters["registry"], where)
    for i, build in enumerate(parameters.get("builds") or []):
        build_ref(build, f"{where}: builds[{i}]")


@contextmanager
def mlflow_run(experiment: str) -> Iterator[None]:
    """The step's MLflow run (its experiment tracker's), or one started for it."""
    import mlflow

    if mlflow.active_run() is not None:
        yield
        return
    point_mlflow_at(tracking_uri_from_stack())
    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name=get_step_context().pipeline_run.name):
        yield


@public_step(check=_check_register, enable_cache=False)
def register(candidate: torch.nn.Module | onnx.ModelProto, evaluation: Evaluation, verdict: Verdict,
             data: pd.DataFrame, task: TaskArg, registry: RegistryArg, builds: list[BuildArg] | None = None,
             module: torch.nn.Module | None = None, champion: ChampionReport | None = None,
             parity: Parity | None = None, validation_report: DataReport | None = None,
             profile: dict[str, JsonValue] | None = None, publication: Publication | None = None,
             split: SplitArg = None, seed: int = 0,
             eval_data: pd.DataFrame | None = None) -> Annotated[Registration, "registration"]:
    """Log the evaluation, the gate report and the candidate to MLflow, make the builds (by
    default the task's registered build: ONNX for the classifiers) and register a version;
    @challenger when the gate passed. ``module`` is the PyTorch candidate where the candidate
    is its ONNX graph (builds made from the module need it)."""
    where = get_step_context().step_name
    prepared = prepare(data, task, where, split, seed, eval_data)
    settings = registry_of(registry, where)
    refs = [build_ref(b, f"{where}: builds[{i}]") for i, b in enumerate(builds or [prepared.task.registered_build])]
    record = publication or Publication(title=settings.name, registry=settings, task=prepared.spec, builds=refs,
                                        params={"task": prepared.spec.name, "registry": settings.name})
    evaluated = as_evaluated(candidate, prepared)
    graph = evaluated if isinstance(evaluated, onnx.ModelProto) else None
    torch_model = module if module is not None else candidate if isinstance(candidate, torch.nn.Module) else None
    context = BuildContext(name=settings.name, task=prepared.task, eval_frame=prepared.eval_rows,
                           model=torch_model, onnx=graph, parity=parity)
    history = carried("candidate") or carried("module")
    with mlflow_run(settings.name):
        registration = log_and_register(record, context, evaluation, verdict, history, validation_report,
                                        champion or ChampionReport(), profile)
    log_metadata(metadata={"registration": registration.model_dump(mode="json")})
    return registration


def _check_promote(where: str, parameters: Mapping[str, Any]) -> None:
    check_task(where, parameters)
    tolerance = parameters.get("tolerance")
    if tolerance is not None and (not isinstance(tolerance, (int, float)) or tolerance < 0):
        raise StepParameterError(f"{where}: tolerance: a number ≥ 0 (the primary metric the candidate may lose)")
    if parameters.get("statistics") is not None:
        validated(Statistics, parameters["statistics"], f"{where}: statistics")


@public_step(check=_check_promote, enable_cache=False)
def promote(registration: Registration, verdict: Verdict, evaluation: Evaluation,
            candidate: torch.nn.Module | onnx.ModelProto, data: pd.DataFrame, task: TaskArg,
            alias: str | None = "champion", tolerance: float = 0.0, champion: ChampionReport | None = None,
            statistics: StatisticsArg = None, split: SplitArg = None, seed: int = 0,
            eval_data: pd.DataFrame | None = None) -> Annotated[Promotion, "promotion"]:
    """Move ``alias`` (@champion) to the new version only if the gate passed and the candidate is
    no worse than the alias's holder, both measured on the same eval rows: the gate's paired
    test on the primary metric, with ``tolerance`` as its bound (no promotion on noise)."""
    where = get_step_context().step_name
    prepared = prepare(data, task, where, split, seed, eval_data)
    settings = validated(Statistics, statistics, f"{where}: statistics")
    with mlflow_run(registration.name):
        outcome = promote_if_better(registration, verdict, evaluation, champion or ChampionReport(),
                                    as_evaluated(candidate, prepared), prepared.eval_rows, prepared.task,
                                    alias, tolerance, statistics=settings)
    log_metadata(metadata={"promotion": outcome.model_dump(mode="json")})
    return outcome


def _check_export(where: str, parameters: Mapping[str, Any]) -> None:
    check_task(where, parameters)
    if "build" in parameters:
        build_ref(parameters["build"], f"{where}: build")


@public_step(check=_check_export, enable_cache=False)
def export_build(registration: Registration, candidate: torch.nn.Module | onnx.ModelProto, data: pd.DataFrame,
                 task: TaskArg, build: BuildArg, module: torch.nn.Module | None = None,
                 split: SplitArg = None, seed: int = 0,
                 eval_data: pd.DataFrame | None = None) -> Annotated[BuildReport, "build_report"]:
    """One more build of a registered version (``"triton-repository"``, ``{"name": "gguf", ...}``),
    written, checked by its consumer and logged with the version's MLflow run."""
    import tempfile
    from pathlib import Path

    import mlflow

    where = get_step_context().step_name
    prepared = prepare(data, task, where, split, seed, eval_data)
    ref = build_ref(build, f"{where}: build")
    config = BUILDS.get(ref.name).model_validate(ref.config)
    evaluated = as_evaluated(candidate, prepared)
    context = BuildContext(name=registration.name, task=prepared.task, eval_frame=prepared.eval_rows,
                           model=module if module is not None else candidate if isinstance(candidate, torch.nn.Module)
                           else None, onnx=evaluated if isinstance(evaluated, onnx.ModelProto) else None,
                           version=registration.version)
    point_mlflow_at(tracking_uri_from_stack())
    with tempfile.TemporaryDirectory(prefix="modelpress-build-") as scratch, \
            mlflow.start_run(run_id=registration.run_id, nested=mlflow.active_run() is not None):
        context.scratch = Path(scratch)
        report: BuildReport = config.write(context)
    log_metadata(metadata={"build": report.model_dump(mode="json")})
    return report
