"""The embedded default stack: a project-local ZenML store and an MLflow sqlite registry.

With no configuration, ``modelpress run`` keeps everything under ``./.modelpress`` (override
with ``MODELPRESS_HOME``): ZenML's store, an MLflow sqlite database and MLflow's artifacts,
created once and idempotently, with no login, prompts or analytics. If the user points
``ZENML_CONFIG_PATH`` at their own ZenML and its active stack has an MLflow experiment tracker
(a remote tracking server, say), that tracker is used instead and nothing is created.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelpress.core.errors import ModelpressError

TRACKER = "modelpress-mlflow"
STACK = "modelpress"


@dataclass(frozen=True)
class Tracking:
    tracker: str
    tracking_uri: str
    embedded: bool
    home: Path


def home() -> Path:
    return Path(os.environ.get("MODELPRESS_HOME", ".modelpress")).resolve()


def configure_environment() -> bool:
    """Set ZenML's environment before it is imported; True if the embedded store is used."""
    os.environ.setdefault("ZENML_ANALYTICS_OPT_IN", "false")
    os.environ.setdefault("ZENML_ENABLE_RICH_TRACEBACK", "false")
    os.environ.setdefault("AUTO_OPEN_DASHBOARD", "false")
    os.environ.setdefault("ZENML_AUTO_OPEN_DASHBOARD", "false")
    if "ZENML_CONFIG_PATH" in os.environ:
        return False
    os.environ["ZENML_CONFIG_PATH"] = str(home() / "zenml")
    return True


def ensure_stack() -> Tracking:
    embedded = configure_environment()
    from zenml.client import Client
    from zenml.enums import StackComponentType

    client = Client()
    trackers = client.active_stack_model.components.get(StackComponentType.EXPERIMENT_TRACKER) or []
    mlflow_trackers = [t for t in trackers if t.flavor_name == "mlflow"]
    if mlflow_trackers:
        tracker = mlflow_trackers[0]
        uri = tracker.configuration.get("tracking_uri") or ""
        return Tracking(tracker.name, uri, embedded, home())
    if not embedded:
        raise ModelpressError(
            f"ZENML_CONFIG_PATH={os.environ['ZENML_CONFIG_PATH']}: the active ZenML stack "
            f"'{client.active_stack_model.name}' has no MLflow experiment tracker. Add one "
            "(zenml experiment-tracker register NAME --flavor=mlflow --tracking_uri=...) or unset "
            "ZENML_CONFIG_PATH to use modelpress' embedded stack.")
    return _create_embedded(client)


def _create_embedded(client: Any) -> Tracking:
    from zenml.enums import StackComponentType

    folder = home()
    folder.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    existing = {c.name for c in client.list_stack_components(type=StackComponentType.EXPERIMENT_TRACKER, size=100)}
    if TRACKER not in existing:
        client.create_stack_component(name=TRACKER, flavor="mlflow",
                                      component_type=StackComponentType.EXPERIMENT_TRACKER,
                                      configuration={"tracking_uri": uri})
    if STACK not in {s.name for s in client.list_stacks(size=100)}:
        client.create_stack(name=STACK, components={
            StackComponentType.ORCHESTRATOR: "default",
            StackComponentType.ARTIFACT_STORE: "default",
            StackComponentType.EXPERIMENT_TRACKER: TRACKER,
        })
    client.activate_stack(STACK)
    return Tracking(TRACKER, uri, True, folder)


def ensure_experiment(tracking: Tracking, name: str) -> None:
    """Create the MLflow experiment with an explicit artifact location (MLflow would otherwise
    put artifacts in ./mlruns of whatever folder the run starts from)."""
    if not tracking.embedded:
        return
    from mlflow import MlflowClient

    client = MlflowClient(tracking.tracking_uri)
    if client.get_experiment_by_name(name) is None:
        artifacts = tracking.home / "mlartifacts"
        artifacts.mkdir(parents=True, exist_ok=True)
        client.create_experiment(name, artifact_location=artifacts.as_uri())
