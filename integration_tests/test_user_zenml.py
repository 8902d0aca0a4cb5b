"""A user's own ZenML (a temp ZENML_CONFIG_PATH) whose active stack has its own artifact store and
no MLflow tracker: `modelpress run` stops with the exact command and registers nothing;
`modelpress stack register` adds modelpress's tracker to a `modelpress` stack that keeps the user's
artifact store; then the run passes and lands in the user's ZenML (the run on that stack, its steps,
their metadata, the gate report's HTML and the MLflow models), read back through the user's Client().
The recipe is the shipped digits one (the smallest the integration tests run), cut to int8 only."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from modelpress.recipe.schema import shipped_recipes

from .helpers import mlflow_client, project_env, run_cli

pytestmark = pytest.mark.slow
NAME = "digits-user-zenml"

SETUP = """
from zenml.client import Client
from zenml.enums import StackComponentType as T
c = Client()
c.create_stack_component(name="user-store", flavor="local", component_type=T.ARTIFACT_STORE,
                         configuration={"path": r"%s"})
c.create_stack(name="user", components={T.ORCHESTRATOR: "default", T.ARTIFACT_STORE: "user-store"})
c.activate_stack("user")
"""

INSPECT = """
import json
from zenml.client import Client
from zenml.enums import StackComponentType as T
c = Client()
runs = c.list_pipeline_runs(size=50).items
found = {"stacks": sorted(s.name for s in c.list_stacks(size=50).items),
         "trackers": sorted(t.name for t in c.list_stack_components(type=T.EXPERIMENT_TRACKER, size=50).items),
         "active": c.active_stack_model.name, "store": c.zen_store.url, "runs": []}
if "modelpress" in found["stacks"]:
    stack = c.get_stack("modelpress")
    found["modelpress_store"] = stack.components[T.ARTIFACT_STORE][0].name
for run in runs:
    run = c.get_pipeline_run(run.id)
    report = run.steps["gate_report"].outputs["gate_report"][0]
    found["runs"].append({
        "name": run.name, "status": str(run.status), "stack": run.stack.name if run.stack else None,
        "steps": sorted(run.steps),
        "gate_metadata": sorted(run.steps["gate"].run_metadata),
        "publish_metadata": sorted(run.steps["publish"].run_metadata),
        "report_visualizations": [str(v.type) for v in report.visualizations or []],
    })
print(json.dumps(found))
"""


def _recipe(project: Path) -> Path:
    recipe = yaml.safe_load(shipped_recipes()["digits-search"].read_text())
    recipe.pop("search")
    recipe["name"] = recipe["registry"]["name"] = NAME
    recipe["model"]["baseline"]["epochs"] = 2
    recipe["stages"] = [{"quantize": {"bits": 8, "operators": ["MatMul", "Gemm"]}}]
    recipe["gate"] = {"accuracy": {"max_drop": 0.05}}
    path = project / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def _python(project: Path, env: dict[str, str], code: str) -> str:
    script = project.parent / "zenml_script.py"  # a file: ZenML needs a main module to find its source root
    script.write_text(code)
    done = subprocess.run([sys.executable, str(script)], cwd=project, env={**project_env(project), **env},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


def test_a_users_zenml_without_tracker_gets_the_command_then_the_registered_stack(
        tmp_path: Path, modelpress_cli: str) -> None:
    project = tmp_path / "project"
    project.mkdir()
    user = {"ZENML_CONFIG_PATH": str(tmp_path / "user-zenml")}
    _python(project, user, SETUP % (tmp_path / "user-artifacts") + "print('ok')")
    _recipe(project)

    refused = run_cli(modelpress_cli, project, "run", "recipe.yaml", env=user)
    assert refused.returncode == 1, refused.output[-3000:]
    assert "the active ZenML stack 'user'" in refused.stderr and "`modelpress stack register`" in refused.stderr
    assert "zenml experiment-tracker register NAME --flavor=mlflow" in refused.stderr  # the alternative
    assert "Traceback" not in refused.output and len(refused.stderr.strip().splitlines()) == 1
    before = json.loads(_python(project, user, INSPECT))
    assert before["stacks"] == ["default", "user"] and before["trackers"] == [] and before["runs"] == []
    assert not (project / ".modelpress" / "mlflow.db").exists()

    registered = run_cli(modelpress_cli, project, "stack", "register", env=user)
    assert registered.returncode == 0, registered.output[-3000:]
    assert "stack 'modelpress' is active" in registered.stdout

    done = run_cli(modelpress_cli, project, "run", "recipe.yaml", env=user, timeout=1200)
    assert done.returncode == 0, done.output[-4000:]
    assert "zenml: run digits-user-zenml_" in done.stdout and "on stack 'modelpress'" in done.stdout

    after = json.loads(_python(project, user, INSPECT))
    assert after["active"] == "modelpress" and after["trackers"] == ["modelpress-mlflow"]
    assert after["modelpress_store"] == "user-store"  # the user's own artifact store stayed
    assert after["store"].startswith(f"sqlite:///{tmp_path / 'user-zenml'}")
    [run] = after["runs"]
    assert run["stack"] == "modelpress" and run["status"].endswith("completed"), run
    assert {"load_data", "evaluate", "gate", "gate_report", "publish", "promote"} <= set(run["steps"])
    assert "gate" in run["gate_metadata"] and "registration" in run["publish_metadata"]
    assert any(v.endswith("html") for v in run["report_visualizations"]), run["report_visualizations"]
    assert any((tmp_path / "user-artifacts").iterdir())  # the artifacts went to the user's store

    client = mlflow_client(project)  # modelpress's tracker: the sqlite registry under the project
    assert int(client.get_model_version_by_alias(NAME, "champion").version) == 1
