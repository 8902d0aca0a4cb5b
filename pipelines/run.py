"""Run a recipe end to end on the active (or embedded) stack and collect what it decided."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelpress.core.handoffs import Evaluation, Promotion, Registration, Verdict
from modelpress.pipelines.plan import build_plan
from modelpress.recipe.schema import RecipeBase
from modelpress.tracking.stack import Tracking, ensure_experiment, ensure_stack
from modelpress.tracking.stale_runs import settle_killed_runs
from modelpress.tracking.uris import point_mlflow_at


@dataclass
class RunResult:
    run_name: str
    run_id: str
    evaluation: Evaluation
    verdict: Verdict
    registration: Registration
    promotion: Promotion
    cached_steps: list[str]
    tracking: Tracking
    notes: tuple[str, ...] = ()  # what the reader must know about the model (from its source)

    @property
    def passed(self) -> bool:
        return self.verdict.passed


def run_recipe(recipe: RecipeBase, enable_cache: bool = True, run_name: str | None = None,
               reference_profile: dict[str, Any] | None = None) -> RunResult:
    """Run ``recipe``; retraining passes the champion's data profile to check drift against."""
    tracking = ensure_stack()
    point_mlflow_at(tracking.tracking_uri, export=True)
    ensure_experiment(tracking, recipe.name)
    settle_killed_runs(tracking.tracking_uri or None, recipe.name)  # a killed attempt's run → FAILED

    from modelpress.pipelines.compress import compress_recipe

    plan = build_plan(recipe, tracking.tracker, experiment=recipe.name, reference_profile=reference_profile)
    name = run_name or f"{recipe.name}_{{date}}_{{time}}"
    run = compress_recipe.with_options(run_name=name, enable_cache=enable_cache)(plan=plan)
    return _collect(run, tracking, tuple(plan.notes))


def _collect(run: Any, tracking: Tracking, notes: tuple[str, ...] = ()) -> RunResult:
    from zenml.client import Client
    from zenml.enums import ExecutionStatus

    run = Client().get_pipeline_run(run.id)
    steps = run.steps

    def output(step: str) -> Any:
        return steps[step].outputs[next(iter(steps[step].outputs))][0].load()

    return RunResult(
        run_name=run.name, run_id=str(run.id),
        evaluation=output("evaluate"), verdict=output("gate"),
        registration=output("publish"), promotion=output("promote"),
        cached_steps=sorted(name for name, s in steps.items() if s.status == ExecutionStatus.CACHED),
        tracking=tracking, notes=notes,
    )
