"""Killed runs: owner tags on the runs a modelpress runner starts (through MLflow's run-context
provider entry point), and the next run closing the orphans as FAILED, on a real MLflow sqlite
registry. Only runs whose owner process on this host is gone are touched."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from modelpress.core.errors import ModelpressError
from modelpress.release.promotion import promote_version
from modelpress.tracking.stale_runs import (
    HOST_TAG,
    OWNER_ENV,
    PID_TAG,
    STARTED_TAG,
    process_started,
    settle_killed_runs,
)


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    folder = tmp_path_factory.mktemp("stale")
    return f"sqlite:///{folder / 'mlflow.db'}", folder  # one database: creating one costs seconds


@pytest.fixture()
def registry(database, request, monkeypatch: pytest.MonkeyPatch) -> tuple[str, MlflowClient, str]:
    """The module's registry with a fresh experiment for this test: (uri, client, experiment)."""
    uri, folder = database
    monkeypatch.delenv(OWNER_ENV, raising=False)
    client = MlflowClient(uri, uri)
    experiment = request.node.name[:60]
    client.create_experiment(experiment, artifact_location=(folder / experiment).as_uri())
    return uri, client, experiment


def dead_owner() -> dict[str, str]:
    """Owner tags of a process that has exited (as a SIGKILLed `modelpress run` has)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.2)"])
    started = process_started(proc.pid)
    proc.wait()
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(proc.pid), STARTED_TAG: f"{started:.2f}"}


def running(client: MlflowClient, experiment: str, tags: dict[str, str]) -> str:
    return client.create_run(client.get_experiment_by_name(experiment).experiment_id, tags=tags).info.run_id


def test_orphaned_runs_end_failed_and_live_ones_are_left_alone(registry) -> None:
    uri, client, experiment = registry
    me = {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}
    me[STARTED_TAG] = f"{process_started(int(me[PID_TAG])):.2f}"
    killed = running(client, experiment, dead_owner())
    reused_pid = running(client, experiment, {**me, STARTED_TAG: "1.00"})  # same pid, another process's start time
    alive = running(client, experiment, me)
    elsewhere = running(client, experiment, {**dead_owner(), HOST_TAG: "another-host"})
    untagged = running(client, experiment, {})

    client.create_registered_model("m1")
    half = client.create_model_version("m1", f"runs:/{killed}/onnx_model", run_id=killed, await_creation_for=0)
    whole = client.create_model_version("m1", f"runs:/{killed}/onnx_model", run_id=killed, await_creation_for=0)
    client.set_registered_model_alias("m1", "challenger", whole.version)

    assert sorted(settle_killed_runs(uri, experiment)) == sorted([killed, reused_pid])
    status = {run: client.get_run(run).info.status for run in (killed, reused_pid, alive, elsewhere, untagged)}
    assert status == {killed: "FAILED", reused_pid: "FAILED", alive: "RUNNING", elsewhere: "RUNNING",
                      untagged: "RUNNING"}
    assert "killed?" in client.get_run(killed).data.tags["modelpress.failed_reason"]
    assert "incomplete" in client.get_model_version("m1", half.version).tags  # registered, publish unfinished
    assert "incomplete" not in client.get_model_version("m1", whole.version).tags  # @challenger: publish done
    assert settle_killed_runs(uri, experiment) == []  # nothing left to settle


def test_an_incomplete_version_is_never_promoted(registry) -> None:
    uri, client, experiment = registry
    run = running(client, experiment, dead_owner())
    client.create_registered_model("m")
    version = client.create_model_version("m", f"runs:/{run}/onnx_model", run_id=run, await_creation_for=0,
                                          tags={"gate": "passed", "accuracy": "0.9", "data_fingerprint": "d"})
    settle_killed_runs(uri, experiment)
    with pytest.raises(ModelpressError, match="incomplete"):
        promote_version("m", version.version, tracking_uri=uri)


def test_runs_started_by_a_runner_carry_owner_tags(registry, monkeypatch) -> None:
    uri, client, experiment = registry
    mlflow.set_tracking_uri(uri)
    try:
        mlflow.set_experiment(experiment)
        with mlflow.start_run() as plain:
            pass
        settle_killed_runs(uri, experiment)  # marks this process as a modelpress runner
        with mlflow.start_run() as owned:
            pass
    finally:
        mlflow.set_tracking_uri(None)
        monkeypatch.delenv(OWNER_ENV, raising=False)
    assert HOST_TAG not in client.get_run(plain.info.run_id).data.tags
    tags = client.get_run(owned.info.run_id).data.tags
    assert tags[HOST_TAG] == socket.gethostname() and tags[PID_TAG] == str(os.getpid())
