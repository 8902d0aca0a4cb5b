"""Record a candidate in MLflow (params, metrics, reports, models, builds), register, promote.

Runs inside a ZenML step that has the MLflow experiment tracker, so an MLflow run is active.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import JsonValue

from modelpress.core.errors import ModelpressError
from modelpress.core.handoffs import ChampionReport, PeerPoint, Promotion, Record, Ref, Registration
from modelpress.core.registry import BUILDS
from modelpress.gate.champion import measure_version
from modelpress.gate.report import render_gate
from modelpress.gate.rules import describe, promotion_check
from modelpress.tracking.model_registry import TORCH_ARTIFACT, client, promote, register

if TYPE_CHECKING:
    import pandas as pd

    from modelpress.builds import BuildContext
    from modelpress.core.handoffs import DataReport, Evaluation, StageReport, Verdict
    from modelpress.settings.blocks import Statistics
    from modelpress.tasks import Task

from modelpress.settings.blocks import ModelRegistrySettings
from modelpress.tasks import TaskSpec

TORCH_REQUIREMENTS = ["torch", "modelpress"]
#: the version tag naming the text tokenizer (a folder or a package), read by source mlflow
TOKENIZER_TAG = "modelpress.tokenizer"


class Publication(Record):
    """What a version is registered with besides the candidate and its evaluation: where, which
    builds, and what the report and the MLflow run record (a recipe's, or a public step's)."""

    title: str  # the gate report's title (the recipe's name)
    registry: ModelRegistrySettings
    task: TaskSpec
    builds: list[Ref]
    params: dict[str, JsonValue] = {}  # logged as MLflow params, flattened
    recipe: dict[str, JsonValue] | None = None  # the recipe, logged as recipe/recipe.json for retraining
    tags: dict[str, str] = {}
    peers: list[PeerPoint] = []
    notes: list[str] = []


def flatten(prefix: str, value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(f"{prefix}.{key}" if prefix else str(key), item))
        return out
    if isinstance(value, list):
        return flatten(prefix, {str(i): v for i, v in enumerate(value)}) if value else {prefix: "[]"}
    return {prefix: value}


def stage_facts(reports: list[StageReport]) -> dict[str, Any]:
    return {f"{r.position}.{r.stage}": r.facts for r in reports}


def log_and_register(publication: Publication, build: BuildContext, evaluation: Evaluation, verdict: Verdict,
                     stage_reports: list[StageReport], data_report: DataReport | None, champion: ChampionReport,
                     profile: dict[str, Any] | None) -> Registration:
    import tempfile
    from pathlib import Path

    import mlflow

    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("publish must run with the MLflow experiment tracker (no active MLflow run)")
    parity = build.parity.model_dump() if build.parity is not None else {}
    mlflow.log_params({k: str(v)[:500] for k, v in flatten("", publication.params).items()})
    numbers = {**flatten("baseline", evaluation.baseline), **flatten("candidate", evaluation.candidate),
               **flatten("parity", parity), **flatten("stage", stage_facts(stage_reports))}
    mlflow.log_metrics({k: float(v) for k, v in numbers.items() if isinstance(v, (int, float))})
    mlflow.log_metric("gate_passed", float(verdict.passed))
    mlflow.log_dict({"evaluation": evaluation.model_dump(mode="json"), "verdict": verdict.model_dump(mode="json"),
                     "parity": parity, "stages": stage_facts(stage_reports),
                     "validation": data_report.model_dump(mode="json") if data_report else None,
                     "champion": champion.model_dump(mode="json")}, "report/report.json")
    _log_gate_evidence(publication, build.task, evaluation, verdict, champion, profile)
    mlflow.set_tags({f"modelpress.{k}": v for k, v in publication.tags.items()})
    # the runtime each model's speed figures came from, beside those metrics in the run
    mlflow.set_tags({f"modelpress.speed_runtime.{k}": v for k, v in evaluation.runtimes.items()})
    with tempfile.TemporaryDirectory(prefix="modelpress-builds-") as scratch:
        build.scratch = Path(scratch)
        if build.model is not None:  # with its image processor, if any, as an extra file
            info = mlflow.pytorch.log_model(build.model, name=_torch_artifact(), serialization_format="pickle",
                                            pip_requirements=TORCH_REQUIREMENTS,
                                            extra_files=build.preprocessor_files() or None)
            build.torch_model_uri = info.model_uri
        return _register(publication, build, evaluation, verdict, run)


def _register(publication: Publication, build: BuildContext, evaluation: Evaluation, verdict: Verdict,
              run: Any) -> Registration:
    """The registering build, the version (tagged with the gate and the primary metric), the
    other builds with that version, and @challenger when the gate passed."""

    reports = _run_builds(publication, build, registering=True)
    registered = next(r for r in reports if r.model_uri)
    primary = build.task.primary_metric
    version = register(registered.model_uri or "", publication.registry.name, {
        "registered_build": registered.name,
        **publication.tags, "gate": "passed" if verdict.passed else "failed", "gate_reason": verdict.reason[:5000],
        "primary_metric": primary, primary: f"{evaluation.candidate[primary]:.6f}",
        "primary_direction": "higher" if build.task.metric(primary).higher_is_better else "lower",
        "mlflow_run_id": run.info.run_id, **check_tags(verdict),
        **({TOKENIZER_TAG: publication.task.tokenizer} if publication.task.tokenizer else {}),
    })
    build.version = str(version.version)
    reports += _run_builds(publication, build, registering=False)
    aliases = []
    if verdict.passed:
        client().set_registered_model_alias(publication.registry.name, publication.registry.challenger,
                                            version.version)
        aliases = [publication.registry.challenger]
    return Registration(name=publication.registry.name, version=str(version.version), run_id=run.info.run_id,
                        model_uri=f"models:/{publication.registry.name}/{version.version}", aliases=aliases,
                        builds=reports)


def check_tags(verdict: Verdict) -> dict[str, str]:
    """``gate.<metric>.<rule>`` → the check as the gate described it (estimate, interval, bound,
    outcome): what ``modelpress promote`` shows before moving an alias by hand."""
    return {f"gate.{c.metric}.{c.rule}": describe(c).split(": ", 1)[-1][:500] for c in verdict.checks}


def _torch_artifact() -> str:
    return TORCH_ARTIFACT


def _run_builds(publication: Publication, context: BuildContext, registering: bool) -> list[Any]:
    """The recipe's builds of one kind (the registering one first, then the rest), in order."""

    reports = []
    for ref in publication.builds:
        build = BUILDS.get(ref.name).model_validate(ref.config)
        if build.registers == registering:
            report = build.write(context)
            context.built[ref.name] = report
            reports.append(report)
    return reports


def _log_gate_evidence(publication: Publication, task: Task, evaluation: Evaluation, verdict: Verdict,
                       champion: ChampionReport, profile: dict[str, Any] | None) -> None:
    """Gate report (HTML + Pareto SVG), per-check numbers, the champion's numbers, the recipe
    itself (what retraining re-runs) and the data profile (what retraining checks drift against)."""
    import mlflow

    page, svg = render_gate(task, evaluation, verdict, champion, publication.peers, publication.title,
                            publication.notes)
    mlflow.log_text(page, "report/gate.html")
    mlflow.log_text(svg, "report/pareto.svg")
    if evaluation.examples:  # an MLflow table: one row per example, both models side by side
        fields = ("input", "baseline", "candidate", "same")
        mlflow.log_table(data={f: [getattr(e, f) for e in evaluation.examples] for f in fields},
                         artifact_file="report/examples.json")
    if publication.notes:
        mlflow.set_tag("modelpress.notes", " | ".join(publication.notes)[:5000])
    checks = {f"gate.{c.metric}.{c.rule}{end}": v for c in verdict.checks
              for end, v in (("", c.value), (".low", c.low), (".high", c.high)) if v is not None}
    champ = {f"champion.{k}": v for k, v in (champion.metrics or {}).items()}
    mlflow.log_metrics({k: float(v) for k, v in {**checks, **champ}.items()})
    if publication.recipe is not None:
        mlflow.log_dict(publication.recipe, "recipe/recipe.json")
    if profile:
        mlflow.log_dict(profile, "data/profile.json")


def primary_score(task: type[Task] | Task, metrics: dict[str, float]) -> float:
    """The task's primary metric, oriented so that higher is better (what promotion compares)."""
    spec = task.metric(task.primary_metric)
    value = float(metrics[task.primary_metric])
    return value if spec.higher_is_better else -value


def paired_refusal(task: type[Task] | Task, alias: str | None, tolerance: float, statistics: Statistics | None,
                   measure: Callable[[Any], ChampionReport]) -> Callable[[Any], str | None]:
    """Why the candidate may not replace the alias's holder (``measure`` gives the holder beside
    the candidate), or None: the gate's paired test on the primary metric, loss within ``tolerance``."""

    def refuse(current: Any) -> str | None:
        primary = task.primary_metric
        check = promotion_check(primary, task.metric(primary).higher_is_better, measure(current),
                                tolerance, statistics)
        if check.passed:
            return None
        return f"not shown within tolerance {tolerance} of @{alias} v{current.version}: {describe(check)}"

    return refuse


def promote_if_better(registration: Registration, verdict: Verdict, evaluation: Evaluation,
                      champion: ChampionReport, candidate: Any, eval_frame: pd.DataFrame, task: Task,
                      alias: str | None, tolerance: float, statistics: Statistics | None = None) -> Promotion:
    """Move ``alias`` to the new version if the gate passed and it is no worse than the holder.

    The holder is compared on the champion measurement the gate used; only if the alias moved
    to another version since then is that version scored again, on the same eval rows. "No
    worse" is the gate's paired test on the primary metric (the loss's interval within
    ``tolerance``; ``statistics: none``: the point estimates), so noise never promotes.
    """
    import mlflow

    def measured_against(current: Any) -> ChampionReport:
        measured = champion
        if not (champion.measured and champion.version == str(current.version)):
            measured = measure_version(current.name, str(current.version), alias, candidate, task, eval_frame)
        if measured.metrics is None:
            raise ModelpressError(f"@{alias} v{current.version} could not be measured: {measured.error}")
        return measured

    refuse = paired_refusal(task, alias, tolerance, statistics, measured_against)

    def score_of(current: Any) -> float:
        return primary_score(task, measured_against(current).metrics or {})

    if not verdict.passed:
        promoted, reason, previous = False, f"gate failed: {verdict.reason}", None
    elif not alias:
        promoted, reason, previous = False, "registry.promote_to is not set", None
    else:
        result = promote(registration.name, registration.version, alias, primary_score(task, evaluation.candidate),
                         score_of, tolerance=tolerance, refuse=refuse)
        promoted, reason, previous = result.promoted, result.reason, result.previous
    client().set_model_version_tag(registration.name, registration.version, "promotion",
                                   f"{'promoted' if promoted else 'not promoted'}: {reason}"[:5000])
    if mlflow.active_run() is not None:
        mlflow.set_tags({"modelpress.promoted": str(promoted), "modelpress.promotion_reason": reason[:5000]})
    return Promotion(promoted=promoted, reason=reason, previous=None if previous is None else str(previous),
                     alias=alias, version=registration.version, name=registration.name)
