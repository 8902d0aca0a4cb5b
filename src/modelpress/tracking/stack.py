"""The ZenML stack a run uses: the user's own, or the embedded default.

Which ZenML is decided in :mod:`modelpress.tracking.zenml_config` (``MODELPRESS_STACK``,
``ZENML_CONFIG_PATH``, ZenML's global config). The user's ZenML is used as it is configured:
its active stack must have an MLflow experiment tracker (a remote tracking server, say, or the
sqlite one ``modelpress stack register`` adds), else the run stops with one line naming that
command. With no ZenML configured, ``modelpress run`` keeps everything under ``./.modelpress``
(override with ``MODELPRESS_HOME``): ZenML's store, an MLflow sqlite database and MLflow's
artifacts, created once and idempotently, with no login, prompts or analytics.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelpress.core.errors import ModelpressError
from modelpress.tracking.zenml_config import STACK_ENV, ZenmlChoice, choose_zenml, embedded_config_path, home

TRACKER = "modelpress-mlflow"
STACK = "modelpress"
REGISTER_COMMAND = "modelpress stack register"
SQLITE = "sqlite:///"


@dataclass(frozen=True)
class Tracking:
    tracker: str
    tracking_uri: str
    embedded: bool
    home: Path  # the folder of modelpress's own sqlite tracker (MLflow's artifacts go beside it)
    stack: str = STACK
    store: str = ""  # the ZenML store's URL the runs land in

    @property
    def owned(self) -> bool:
        """modelpress's own sqlite tracker (embedded or registered): it creates the experiments."""
        return self.tracker == TRACKER and self.tracking_uri.startswith(SQLITE)


@dataclass(frozen=True)
class StackRegistration:
    stack: str
    tracker: str
    tracking_uri: str
    store: str
    created: bool  # False: the active stack already had an MLflow tracker, nothing changed


def quiet_zenml() -> None:
    """ZenML's environment before it is imported: no analytics, prompts or browser."""
    os.environ.setdefault("ZENML_ANALYTICS_OPT_IN", "false")
    os.environ.setdefault("ZENML_ENABLE_RICH_TRACEBACK", "false")
    os.environ.setdefault("AUTO_OPEN_DASHBOARD", "false")
    os.environ.setdefault("ZENML_AUTO_OPEN_DASHBOARD", "false")


def configure_environment() -> ZenmlChoice:
    """Point ZenML at the chosen store before it is imported."""
    quiet_zenml()
    choice = choose_zenml()
    if choice.embedded:
        os.environ["ZENML_CONFIG_PATH"] = str(embedded_config_path())
        for key in [k for k in os.environ if k.startswith("ZENML_STORE_")]:
            del os.environ[key]  # ZenML's store variables would override the embedded store's file
    return choice


def ensure_stack() -> Tracking:
    choice = configure_environment()
    from zenml.client import Client

    client = Client()
    stack = client.active_stack_model
    tracker = _mlflow_tracker(stack)
    if tracker is not None:
        uri = tracker.configuration.get("tracking_uri") or ""
        return Tracking(tracker.name, uri, choice.embedded, _tracker_home(uri), stack.name, client.zen_store.url)
    if not choice.embedded:
        raise ModelpressError(
            f"the active ZenML stack '{stack.name}' ({choice.reason}) has no MLflow experiment tracker: run "
            f"`{REGISTER_COMMAND}` to add modelpress's sqlite tracker in a stack '{STACK}' that keeps your "
            "orchestrator and artifact store, or add your own (zenml experiment-tracker register NAME "
            "--flavor=mlflow --tracking_uri=URI, then zenml stack update -e NAME); "
            f"{STACK_ENV}=embedded uses modelpress's own store instead")
    return _create_embedded(client)


def _mlflow_tracker(stack: Any) -> Any:
    from zenml.enums import StackComponentType

    trackers = stack.components.get(StackComponentType.EXPERIMENT_TRACKER) or []
    return next((t for t in trackers if t.flavor_name == "mlflow"), None)


def _tracker_home(uri: str) -> Path:
    return Path(uri[len(SQLITE):]).parent if uri.startswith(SQLITE) else home()


def _ensure_tracker(client: Any, folder: Path) -> str:
    """modelpress's sqlite tracker, created once; its tracking URI."""
    from zenml.enums import StackComponentType

    kind = StackComponentType.EXPERIMENT_TRACKER
    existing = {c.name: c for c in client.list_stack_components(type=kind, name=TRACKER, size=10)}
    if TRACKER in existing:
        return str(existing[TRACKER].configuration.get("tracking_uri") or "")
    folder.mkdir(parents=True, exist_ok=True)
    uri = f"{SQLITE}{folder / 'mlflow.db'}"
    client.create_stack_component(name=TRACKER, flavor="mlflow", component_type=kind,
                                  configuration={"tracking_uri": uri})
    return uri


def _create_embedded(client: Any) -> Tracking:
    from zenml.enums import StackComponentType

    folder = home()
    uri = _ensure_tracker(client, folder)
    if STACK not in {s.name for s in client.list_stacks(name=STACK, size=10)}:
        client.create_stack(name=STACK, components={
            StackComponentType.ORCHESTRATOR: "default",
            StackComponentType.ARTIFACT_STORE: "default",
            StackComponentType.EXPERIMENT_TRACKER: TRACKER,
        })
    client.activate_stack(STACK)
    return Tracking(TRACKER, uri, True, folder, STACK, client.zen_store.url)


def register_stack() -> StackRegistration:
    """``modelpress stack register``: in the ZenML that ZenML itself would use (``ZENML_CONFIG_PATH``,
    else the global config), a stack ``modelpress`` with the active stack's components (orchestrator,
    artifact store, …) and modelpress's sqlite MLflow tracker (under ``MODELPRESS_HOME``), made
    active. Idempotent; an active stack that already has an MLflow tracker is left as it is."""
    if os.environ.get(STACK_ENV) == "embedded":
        raise ModelpressError(f"{STACK_ENV}=embedded: modelpress uses its own store, which needs no "
                              f"registration; unset {STACK_ENV} to register a stack in your ZenML")
    quiet_zenml()
    from zenml.client import Client
    from zenml.enums import StackComponentType

    client = Client()
    active = client.active_stack_model
    found = _mlflow_tracker(active)
    if found is not None:
        return StackRegistration(active.name, found.name, str(found.configuration.get("tracking_uri") or ""),
                                 client.zen_store.url, created=False)
    uri = _ensure_tracker(client, home())
    tracker = StackComponentType.EXPERIMENT_TRACKER
    if STACK in {s.name for s in client.list_stacks(name=STACK, size=10)}:
        if _mlflow_tracker(client.get_stack(STACK)) is None:
            client.update_stack(STACK, component_updates={tracker: TRACKER})
    else:  # the user's own components stay: only the experiment tracker is modelpress's
        components: dict[Any, Any] = {kind: [c.id for c in listed] if len(listed) > 1 else listed[0].id
                                      for kind, listed in active.components.items() if listed and kind != tracker}
        client.create_stack(name=STACK, components={**components, tracker: TRACKER})
    client.activate_stack(STACK)
    return StackRegistration(STACK, TRACKER, uri, client.zen_store.url, created=True)


def ensure_experiment(tracking: Tracking, name: str) -> None:
    """Create the MLflow experiment with an explicit artifact location (MLflow would otherwise
    put artifacts in ./mlruns of whatever folder the run starts from)."""
    if not tracking.owned:
        return
    from mlflow import MlflowClient

    client = MlflowClient(tracking.tracking_uri)
    if client.get_experiment_by_name(name) is None:
        artifacts = tracking.home / "mlartifacts"
        artifacts.mkdir(parents=True, exist_ok=True)
        client.create_experiment(name, artifact_location=artifacts.as_uri())


__all__ = ["STACK", "TRACKER", "StackRegistration", "Tracking", "embedded_config_path", "ensure_experiment",
           "ensure_stack", "home", "register_stack"]
