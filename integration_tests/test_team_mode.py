"""Team mode with the real servers, and killed runs.

A real `mlflow server` (sqlite, --serve-artifacts) and a local ZenML server, both on 127.0.0.1,
started and stopped here; the ZenML stack's MLflow experiment tracker points at the tracking
server. The shipped mnist-cnn recipe (fewer rows and epochs) runs through them, then
`modelpress promote`, `rollback`, `retrain` and `pull`. Two runs are SIGKILLed on the way, as
a preempted node or the OOM killer would: one during a stage, one during publish. Each re-run
must resume from ZenML's cache, the kill must leave @champion where it was and no alias on a
half-registered version, and the killed attempt's MLflow run must end FAILED, not RUNNING.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from modelpress.recipe.schema import shipped_recipes

from .helpers import ANSI, project_env, run_cli
from .team_servers import start_zenml, stop_zenml

pytestmark = pytest.mark.slow
NAME = "team-mnist"
STEP_LINE = re.compile(r"Step `?(\w+)`? has (started|finished)")


def team_recipe(project: Path, filename: str, lr: float) -> Path:
    """The shipped mnist-cnn recipe on 1,500 rows and 2 epochs."""
    recipe = yaml.safe_load(shipped_recipes()["mnist-cnn"].read_text())
    recipe["name"] = recipe["registry"]["name"] = NAME
    recipe["data"]["limit"] = 1500
    recipe["model"]["baseline"].update(epochs=2, lr=lr)
    recipe["gate"]["accuracy"] = {"max_drop": 0.05}  # 2 epochs on 1,200 rows: a less settled model
    path = project / filename
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.fixture(scope="module")
def team(mlflow_server, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("team")
    server = start_zenml(root, mlflow_server.url)
    try:
        env = {**server.env(), "MLFLOW_TRACKING_URI": mlflow_server.url}
        yield root, env, MlflowClient(mlflow_server.url, mlflow_server.url)
    finally:
        stop_zenml(server)


def kill_when(cli: str, project: Path, env: dict[str, str], args: list[str], ready) -> list[str]:
    """Run the CLI and SIGKILL its whole process group as soon as ``ready(lines)`` is true;
    returns the lines it printed."""
    proc = subprocess.Popen([cli, *args], cwd=project, env={**project_env(project), **env}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    lines: list[str] = []
    try:
        for line in proc.stdout:
            lines.append(ANSI.sub("", line.rstrip("\n")))
            if ready(lines):
                os.killpg(proc.pid, signal.SIGKILL)
                break
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "\n".join(lines[-30:])
    return lines


def steps(lines: list[str], state: str) -> set[str]:
    return {m.group(1) for line in lines if (m := STEP_LINE.search(line)) and m.group(2) == state}


def cached(result) -> set[str]:
    return set(result.stdout.split("cached steps:")[1].split("\n")[0].replace(",", " ").split())


def champion(client: MlflowClient) -> str | None:
    try:
        return str(client.get_model_version_by_alias(NAME, "champion").version)
    except Exception:  # noqa: BLE001 -- RESOURCE_DOES_NOT_EXIST: no champion yet
        return None


def versions(client: MlflowClient) -> dict[str, object]:
    return {str(v.version): v for v in client.search_model_versions(f"name='{NAME}'")}


def running_runs(client: MlflowClient) -> list:
    experiment = client.get_experiment_by_name(NAME)
    if experiment is None:
        return []
    return client.search_runs([experiment.experiment_id], "attributes.status = 'RUNNING'")


def test_team_servers_runs_kills_and_the_registry_commands(team, modelpress_cli: str) -> None:
    project, env, client = team
    recipe = team_recipe(project, "mnist.yaml", 2.0e-3)

    # --- killed during a stage: the steps it finished are not recomputed ---------------------
    lines = kill_when(modelpress_cli, project, env, ["run", str(recipe)],
                      lambda seen: "stage1_prune" in steps(seen[-1:], "started"))
    finished = steps(lines, "finished")
    assert {"load_data", "load_model", "export_baseline"} <= finished and "stage1_prune" not in finished, lines[-20:]
    assert champion(client) is None and not versions(client)

    done = run_cli(modelpress_cli, project, "run", str(recipe), env=env)
    assert done.returncode == 0, done.output[-4000:]
    assert finished <= cached(done) and "stage1_prune" not in cached(done), (finished, cached(done))
    assert f"MLflow: {env['MLFLOW_TRACKING_URI']}" in done.stdout  # the team's tracking server, not sqlite
    assert champion(client) == "1"
    run = client.get_run(versions(client)["1"].run_id)
    assert any(a.path.startswith("logs/") for a in client.list_artifacts(run.info.run_id, "logs"))  # full log kept

    # --- killed during publish (retrain re-runs the champion's recipe, fully cached) ----------
    before = champion(client)
    known = set(versions(client))

    def publishing(seen: list[str]) -> bool:
        if "publish" not in steps(seen, "started"):
            return False
        deadline = time.monotonic() + 60
        while not running_runs(client) and time.monotonic() < deadline:
            time.sleep(0.05)  # publish has opened its MLflow run: the moment to be killed
        return True

    kill_when(modelpress_cli, project, env, ["retrain", NAME], publishing)
    [killed] = running_runs(client)
    assert killed.data.tags["modelpress.owner.host"] and killed.data.tags["modelpress.owner.pid"]
    assert champion(client) == before
    half = [v for k, v in versions(client).items() if k not in known]
    assert all(not v.aliases for v in half), [(v.version, v.aliases) for v in half]

    done = run_cli(modelpress_cli, project, "retrain", NAME, env=env)
    assert done.returncode == 0, done.output[-4000:]
    settled = client.get_run(killed.info.run_id)
    assert settled.info.status == "FAILED" and "killed" in settled.data.tags["modelpress.failed_reason"]
    assert {"load_data", "load_model", "stage1_prune", "stage2_quantize", "evaluate"} <= cached(done)
    assert not running_runs(client)
    for version in half:  # a version the killed publish registered is marked, never promotable
        assert "incomplete" in client.get_model_version(NAME, version.version).tags
    newest = max(versions(client), key=int)
    assert champion(client) == newest and newest not in {v.version for v in half}

    # --- promote / rollback / pull through the tracking server ----------------------------------
    done = run_cli(modelpress_cli, project, "rollback", NAME, env=env)
    assert done.returncode == 0, done.output
    rolled_to = champion(client)
    assert rolled_to != newest
    done = run_cli(modelpress_cli, project, "promote", NAME, "--version", newest, env=env)
    assert done.returncode == 0 and "promoted to @champion" in done.stdout, done.output
    assert champion(client) == newest
    done = run_cli(modelpress_cli, project, "pull", f"models:/{NAME}@champion", "--to", "repository", env=env)
    assert done.returncode == 0, done.output
    assert (project / "repository" / NAME / newest / "model.onnx").stat().st_size > 1000
