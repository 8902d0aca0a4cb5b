"""Where MLflow's tracking server and registry are: decided here, and only here.

Inside a pipeline the active ZenML stack's MLflow experiment tracker is the authority (its
steps set MLflow's global URIs); outside one (the CLI's registry commands, retraining, search's
final promotion) modelpress points MLflow's *global* tracking and registry URIs at the stack's
(model URIs such as ``models:/name/1`` resolve through them), and restores what was set before
where a command only borrows another registry.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow import MlflowClient


def tracking_uri_from_stack() -> str | None:
    """The MLflow tracking URI: the environment's, else the active ZenML stack tracker's."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    try:
        from zenml.client import Client

        tracker = Client().active_stack.experiment_tracker
        return tracker.get_tracking_uri() if tracker is not None else None  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 -- no ZenML stack (plain library use): MLflow's own default applies
        return None


def point_mlflow_at(uri: str | None, export: bool = False) -> None:
    """Set MLflow's global tracking and registry URIs to ``uri`` (no-op for None); ``export``
    also sets MLFLOW_TRACKING_URI (unless already set) for subprocesses such as ZenML's steps."""
    if not uri:
        return
    import mlflow

    if export:
        os.environ.setdefault("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)


@contextlib.contextmanager
def use_tracking(uri: str | None) -> Iterator[MlflowClient]:
    """An MlflowClient on ``uri`` with MLflow's global URIs pointed there for the duration."""
    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    if uri is None:
        yield mlflow.MlflowClient()
        return
    # Restore what was explicitly set (None = MLflow's default), not the resolved default:
    # pinning that would also export MLFLOW_TRACKING_URI to every later subprocess.
    before = tracking_utils._tracking_uri, registry_utils._registry_uri
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield mlflow.MlflowClient(uri, uri)
    finally:
        mlflow.set_tracking_uri(before[0])  # type: ignore[arg-type]  # None unsets it (MLflow's own default)
        mlflow.set_registry_uri(before[1])  # type: ignore[arg-type]
