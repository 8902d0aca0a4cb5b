"""``schedule: {cron}`` → a ZenML ``Schedule`` on orchestrators that can run one.

ZenML hands schedules to the orchestrator (Kubernetes: a CronJob; Kubeflow, Airflow, Vertex,
SageMaker, AzureML, Databricks: their own schedulers). The local orchestrator has none, so
there we say so plainly and print what to run instead, rather than letting ZenML fail later.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelpress.core.errors import ModelpressError

if TYPE_CHECKING:
    from zenml.config.schedule import Schedule

    from modelpress.recipe.schema import RecipeBase


@dataclass(frozen=True)
class OrchestratorInfo:
    name: str
    flavor: str
    schedulable: bool


def build_schedule(recipe: RecipeBase) -> Schedule:
    """The ZenML schedule for ``recipe.schedule`` (its cron was validated at load)."""
    from zenml.config.schedule import Schedule

    if recipe.schedule is None:
        raise ModelpressError(f"recipe {recipe.name!r} has no schedule: add `schedule: {{cron: \"0 3 * * 1\"}}`")
    return Schedule(name=f"{recipe.name}-retrain", cron_expression=recipe.schedule.cron)


def active_orchestrator() -> OrchestratorInfo:
    """The active stack's orchestrator, read from its stored model and flavor config.

    Not through ``Client().active_stack``: that instantiates the orchestrator, which for
    Kubernetes imports the ``kubernetes`` client. Whether a flavor can schedule is known from
    its config class alone, so this works (and tests) without a cluster or its client.
    """
    from zenml.client import Client
    from zenml.enums import StackComponentType
    from zenml.stack.flavor import Flavor

    client = Client()
    [component] = client.active_stack_model.components[StackComponentType.ORCHESTRATOR]
    flavor_model = client.get_flavor_by_name_and_type(component.flavor_name, StackComponentType.ORCHESTRATOR)
    flavor = Flavor.from_model(flavor_model)
    config = flavor.config_class(**component.configuration)
    schedulable = bool(getattr(config, "is_schedulable", False))  # an orchestrator config's property
    return OrchestratorInfo(component.name, component.flavor_name, schedulable)


def unschedulable_message(recipe: RecipeBase, orchestrator: OrchestratorInfo, registered_name: str) -> str:
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
