"""``schedule: {cron}`` → a ZenML ``Schedule`` on orchestrators that can run one.

ZenML hands schedules to the orchestrator (Kubernetes: a CronJob; Kubeflow, Airflow, Vertex,
SageMaker, AzureML, Databricks: their own schedulers). The local orchestrator has none, so
there we say so plainly and print what to run instead, rather than letting ZenML fail later.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import ModelpressError

if TYPE_CHECKING:
    from zenml.config.schedule import Schedule

    from .recipe import RecipeBase


@dataclass(frozen=True)
class OrchestratorInfo:
    name: str
    flavor: str
    schedulable: bool


def build_schedule(recipe: "RecipeBase") -> "Schedule":
    """The ZenML schedule for ``recipe.schedule`` (its cron was validated at load)."""
    from zenml.config.schedule import Schedule

    if recipe.schedule is None:
        raise ModelpressError(f"recipe {recipe.name!r} has no schedule: add `schedule: {{cron: \"0 3 * * 1\"}}`")
    return Schedule(name=f"{recipe.name}-retrain", cron_expression=recipe.schedule.cron)


def active_orchestrator() -> OrchestratorInfo:
    from zenml.client import Client

    orchestrator = Client().active_stack.orchestrator
    return OrchestratorInfo(orchestrator.name, orchestrator.flavor, bool(orchestrator.config.is_schedulable))


def unschedulable_message(recipe: "RecipeBase", orchestrator: OrchestratorInfo, registered_name: str) -> str:
    cron = recipe.schedule.cron if recipe.schedule else "0 3 * * 1"
    command = f"modelpress retrain {shlex.quote(registered_name)}"
    return (
        f"the active ZenML stack's orchestrator {orchestrator.name!r} ({orchestrator.flavor} flavor) cannot run "
        f"schedules, so `schedule: {{cron: \"{cron}\"}}` was not registered. Run retraining on that cron instead:\n"
        f"  * system cron (this machine):  {cron}  cd {shlex.quote(str(_cwd()))} && {command}\n"
        f"  * Kubernetes without a scheduling orchestrator: the Helm chart charts/modelpress-retrain "
        f"(helm install retrain charts/modelpress-retrain --set schedule='{cron}' ...)\n"
        f"  * or make the stack schedulable: register a kubernetes orchestrator "
        f"(zenml orchestrator register k8s --flavor=kubernetes --kubernetes_context=...; zenml stack update -o k8s) "
        f"and run `modelpress schedule` again"
    )


def _cwd() -> Any:
    from pathlib import Path

    return Path.cwd()
