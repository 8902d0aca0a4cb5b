"""The embedded default stack, and deferring to a user's own ZenML stack with an MLflow tracker."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import json, os, sys
from modelpress.tracking.stack import ensure_stack
from modelpress.core.errors import ModelpressError
mode = sys.argv[1]
if mode == "user":
    from zenml.client import Client
    from zenml.enums import StackComponentType as T
    c = Client()
    if sys.argv[2] == "with-tracker":
        c.create_stack_component(name="team-mlflow", flavor="mlflow", component_type=T.EXPERIMENT_TRACKER,
                                 configuration={"tracking_uri": "http://mlflow.team.internal:5000",
                                                "tracking_token": "not-a-real-token"})
        c.create_stack(name="team", components={T.ORCHESTRATOR: "default", T.ARTIFACT_STORE: "default",
                                                T.EXPERIMENT_TRACKER: "team-mlflow"})
        c.activate_stack("team")
try:
    t = ensure_stack()
    print(json.dumps({"tracker": t.tracker, "uri": t.tracking_uri, "embedded": t.embedded}))
except ModelpressError as e:
    print(json.dumps({"error": str(e)}))
"""


def run(tmp_path: Path, *args: str, zenml_config: Path | None = None) -> dict:
    import json

    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZENML_", "MODELPRESS_"))}
    env.update(ZENML_ANALYTICS_OPT_IN="false", MODELPRESS_HOME=str(tmp_path / "home"))
    if zenml_config:
        env["ZENML_CONFIG_PATH"] = str(zenml_config)
    script = tmp_path / "probe.py"
    script.write_text(SCRIPT)
    done = subprocess.run([sys.executable, str(script), *args], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_embedded_stack_is_created_once_in_the_project_folder(tmp_path: Path) -> None:
    first = run(tmp_path, "embedded")
    again = run(tmp_path, "embedded")
    assert first == again
    assert first["embedded"] and first["tracker"] == "modelpress-mlflow"
    assert first["uri"] == f"sqlite:///{tmp_path / 'home' / 'mlflow.db'}"
    assert (tmp_path / "home" / "zenml").is_dir()


def test_a_users_mlflow_tracker_is_used_instead(tmp_path: Path) -> None:
    found = run(tmp_path, "user", "with-tracker", zenml_config=tmp_path / "user-zenml")
    assert found == {"tracker": "team-mlflow", "uri": "http://mlflow.team.internal:5000", "embedded": False}
    assert not (tmp_path / "home" / "mlflow.db").exists()


def test_a_user_stack_without_tracker_gets_a_clear_error(tmp_path: Path) -> None:
    found = run(tmp_path, "user", "no-tracker", zenml_config=tmp_path / "user-zenml")
    assert "has no MLflow experiment tracker" in found["error"] and "ZENML_CONFIG_PATH" in found["error"]
