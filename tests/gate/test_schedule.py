"""`schedule: {cron}` → a ZenML Schedule where the orchestrator can run one; a clear message
on the local orchestrator. One subprocess with its own ZenML store (no cluster needed: the
Kubernetes orchestrator flavor is registered, not deployed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from modelpress.core.errors import RecipeError
from modelpress.recipe.schema import load_recipe, validate_recipe

PROBE = """
import json
from modelpress.core.errors import ModelpressError
from modelpress.recipe.schema import load_recipe, validate_recipe
raw = load_recipe("mnist-cnn").model_dump(mode="json")
raw["schedule"] = {"cron": "30 2 * * MON"}
recipe = validate_recipe(raw)
from modelpress.pipelines.retrain import schedule_retraining
out = {}
try:
    schedule_retraining(recipe)            # embedded stack: local orchestrator
except ModelpressError as exc:
    out["local"] = str(exc)
from zenml.client import Client
from zenml.config.schedule import Schedule
from zenml.enums import StackComponentType as T
client = Client()
client.create_stack_component(name="k8s", flavor="kubernetes", component_type=T.ORCHESTRATOR,
                              configuration={"kubernetes_context": "prod", "kubernetes_namespace": "ml"})
client.create_stack(name="k8s-stack", components={T.ORCHESTRATOR: "k8s", T.ARTIFACT_STORE: "default",
                                                  T.EXPERIMENT_TRACKER: "modelpress-mlflow"})
client.activate_stack("k8s-stack")
from modelpress.release.schedule import active_orchestrator, build_schedule
info, schedule = active_orchestrator(), build_schedule(recipe)
assert isinstance(schedule, Schedule)
out.update(flavor=info.flavor, schedulable=info.schedulable, cron=schedule.cron_expression, name=schedule.name)
print(json.dumps(out))
"""


def test_schedule_on_kubernetes_flavor_and_message_on_local(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZENML_", "MLFLOW_", "MODELPRESS_"))}
    env.update(ZENML_ANALYTICS_OPT_IN="false", MODELPRESS_HOME=str(tmp_path / "home"))
    script = tmp_path / "probe.py"  # a file, not -c: ZenML needs a source root
    script.write_text(PROBE)
    done = subprocess.run([sys.executable, str(script)], check=False, env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["flavor"] == "kubernetes" and found["schedulable"] is True
    assert found["cron"] == "30 2 * * MON" and found["name"] == "mnist-cnn-retrain"
    local = found["local"]
    assert "'default' (local flavor) cannot run schedules" in local
    assert "30 2 * * MON  cd" in local and "modelpress retrain mnist-cnn" in local  # a crontab line
    assert "charts/modelpress-retrain" in local


@pytest.mark.parametrize("cron, expected", [
    ("0 25 * * *", "hour: '25' is outside 0-23"),
    ("5-1 * * * *", "minute: range '5-1' runs backwards"),
    ("0 3 * *", "not a 5-field cron expression"),
])
def test_invalid_cron_is_refused_at_load(cron: str, expected: str) -> None:
    raw = load_recipe("mnist-cnn").model_dump(mode="json")
    raw["schedule"] = {"cron": cron}
    with pytest.raises(RecipeError, match="schedule.cron") as caught:
        validate_recipe(raw)
    assert expected in str(caught.value)
