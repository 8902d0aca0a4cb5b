"""Killed runs are closed as FAILED, not left RUNNING for ever.

A process killed with SIGKILL (a preempted node, the OOM killer) cannot end its MLflow run,
so the run stays RUNNING and the registry cannot tell an abandoned attempt from a live one.
Two halves fix that:

* :class:`OwnerTags` is an MLflow run-context provider (registered under the
  ``mlflow.run_context_provider`` entry point): every run that ``mlflow.start_run`` creates in
  a process that :func:`settle_killed_runs` has marked as a modelpress runner gets tags naming
  its owner -- host, pid and the pid's start time (pids are reused; the start time is not).
  ZenML's MLflow tracker starts the runs inside our steps, so this needs no hook in its code.
* :func:`settle_killed_runs`, called when ``modelpress run`` starts, ends every RUNNING run of
  the experiment whose owner is on this host and no longer alive as FAILED, and tags the model
  versions such a run registered before publish finished (no alias yet) as incomplete
  (``modelpress promote`` refuses them).

Runs owned by another host (a remote orchestrator's pod) are left alone: their liveness cannot
be checked from here.
"""

from __future__ import annotations

import os
import socket
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow import MlflowClient

OWNER_ENV = "MODELPRESS_RUN_OWNER"  # set in the runner process; inherited by local step processes
HOST_TAG, PID_TAG, STARTED_TAG = "modelpress.owner.host", "modelpress.owner.pid", "modelpress.owner.started"
INCOMPLETE_TAG = "incomplete"


class OwnerTags:
    """Owner tags on the runs a modelpress runner starts (nothing elsewhere).

    MLflow only calls ``in_context()`` and ``tags()`` on a provider; not subclassing its
    ``RunContextProvider`` keeps mlflow out of this module's imports, which MLflow itself
    triggers while it is being imported (the entry point is loaded then)."""

    def in_context(self) -> bool:
        return os.environ.get(OWNER_ENV) == "1"

    def tags(self) -> dict[str, str]:
        pid = os.getpid()
        return {HOST_TAG: socket.gethostname(), PID_TAG: str(pid), STARTED_TAG: f"{process_started(pid):.2f}"}


def process_started(pid: int) -> float:
    """When ``pid`` started (seconds since the epoch), or -1 if no such process runs."""
    import psutil  # a ZenML dependency

    try:
        return psutil.Process(pid).create_time()
    except psutil.NoSuchProcess:
        return -1.0
    except psutil.Error:  # AccessDenied: it runs, as another user
        return float("inf")


def owner_alive(tags: dict[str, str]) -> bool:
    """True unless the tags name a process on this host that is gone (or a reused pid)."""
    if tags.get(HOST_TAG) != socket.gethostname():
        return True
    try:
        pid, started = int(tags[PID_TAG]), float(tags[STARTED_TAG])
    except (KeyError, ValueError):
        return True
    now = process_started(pid)
    return now == float("inf") or (now >= 0 and abs(now - started) < 1.0)


def settle_killed_runs(tracking_uri: str | None, experiment: str) -> list[str]:
    """Mark this process as a runner and end the experiment's orphaned runs as FAILED;
    returns their ids. Never fails the run that called it: a registry it cannot read is
    someone else's problem to report."""
    os.environ[OWNER_ENV] = "1"
    try:
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri, tracking_uri)
        found = client.get_experiment_by_name(experiment)
        if found is None:
            return []
        running = client.search_runs([found.experiment_id], "attributes.status = 'RUNNING'", max_results=1000)
        orphans = [run for run in running if not owner_alive(run.data.tags)]
        for run in orphans:
            _fail(client, run.info.run_id, run.data.tags)
        return [run.info.run_id for run in orphans]
    except Exception:  # noqa: BLE001 -- housekeeping must not stop a run
        return []


def _fail(client: MlflowClient, run_id: str, tags: dict[str, str]) -> None:
    reason = (f"owner process {tags.get(PID_TAG)} on {tags.get(HOST_TAG)} ended without finishing the run "
              "(killed?); closed by the next modelpress run")
    client.set_tag(run_id, "modelpress.failed_reason", reason)
    client.set_terminated(run_id, status="FAILED", end_time=int(time.time() * 1000))
    for found in client.search_model_versions(f"run_id = '{run_id}'"):
        version = client.get_model_version(found.name, found.version)  # search leaves aliases out
        if not version.aliases:  # publish sets @challenger last: a version with an alias is whole
            client.set_model_version_tag(version.name, version.version, INCOMPLETE_TAG, reason)
