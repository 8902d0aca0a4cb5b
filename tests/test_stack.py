"""The embedded default stack, and deferring to a user's own ZenML (ZENML_CONFIG_PATH or ZenML's global
config) whose active stack has an MLflow tracker."""

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


def run(tmp_path: Path, *args: str, zenml_config: Path | None = None, script: str = SCRIPT,
        **extra: str) -> dict:
    import json

    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZENML_", "MODELPRESS_"))}
    env.update(ZENML_ANALYTICS_OPT_IN="false", MODELPRESS_HOME=str(tmp_path / "home"), **extra)
    if zenml_config:
        env["ZENML_CONFIG_PATH"] = str(zenml_config)
    path = tmp_path / "probe.py"
    path.write_text(script)
    done = subprocess.run([sys.executable, str(path), *args], env=env, cwd=tmp_path,
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
    assert "the active ZenML stack 'default' (ZENML_CONFIG_PATH=" in found["error"]
    assert "has no MLflow experiment tracker: run `modelpress stack register`" in found["error"]
    assert not (tmp_path / "home" / "mlflow.db").exists()


#: ZenML used the usual way (no ZENML_CONFIG_PATH): its global config, under $XDG_CONFIG_HOME/zenml;
#: what modelpress's detection (files only) says of it while bare, then once a stack with a tracker is
#: active; and, in this process that now uses ZenML, that ZenML whatever the environment says
GLOBAL = """
import json, os
from modelpress.tracking.zenml_config import choose_zenml, configured, global_config_directory
from zenml.client import Client
from zenml.enums import StackComponentType as T
from zenml.utils.io_utils import get_global_config_directory
c = Client()
c.active_stack_model  # ZenML writes its config and default store on first use
folder = global_config_directory()
bare = configured(folder)
c.create_stack_component(name="team-mlflow", flavor="mlflow", component_type=T.EXPERIMENT_TRACKER,
                         configuration={"tracking_uri": "http://mlflow.team.internal:5000",
                                        "tracking_token": "not-a-real-token"})
c.create_stack(name="team", components={T.ORCHESTRATOR: "default", T.ARTIFACT_STORE: "default",
                                        T.EXPERIMENT_TRACKER: "team-mlflow"})
c.activate_stack("team")
os.environ["MODELPRESS_STACK"] = "embedded"  # too late: ZenML is set up in this process
in_use = choose_zenml()
print(json.dumps({"zenml_dir": get_global_config_directory(), "ours": str(folder), "bare": bare,
                  "after": configured(folder), "in_use": [in_use.embedded, in_use.reason]}))
"""

#: the choice alone, in a process that has not imported ZenML
CHOICE = """
import json
from modelpress.core.errors import ModelpressError
from modelpress.tracking.zenml_config import choose_zenml
try:
    choice = choose_zenml()
    print(json.dumps([choice.embedded, choice.reason]))
except ModelpressError as e:
    print(json.dumps({"error": str(e)}))
"""


def test_zenmls_global_config_is_detected_once_it_is_more_than_the_default(tmp_path: Path) -> None:
    xdg = tmp_path / "xdg"
    found = run(tmp_path, script=GLOBAL, XDG_CONFIG_HOME=str(xdg))
    assert found["ours"] == found["zenml_dir"] == str(xdg / "zenml")  # where ZenML itself looks
    assert found["bare"] is False  # ZenML used once and untouched: not configured (the embedded store runs)
    assert found["after"] is True
    assert found["in_use"] == [False, f"the ZenML this process already uses ({xdg / 'zenml'})"]
    assert run(tmp_path, script=CHOICE, XDG_CONFIG_HOME=str(xdg)) == [
        False, f"ZenML's global config {xdg / 'zenml' / 'config.yaml'}"]

    used = run(tmp_path, "global", XDG_CONFIG_HOME=str(xdg))
    assert used == {"tracker": "team-mlflow", "uri": "http://mlflow.team.internal:5000", "embedded": False}
    assert not (tmp_path / "home" / "zenml").exists() and not (tmp_path / "home" / "mlflow.db").exists()


def test_the_embedded_store_can_be_forced_and_the_choice_is_checked(tmp_path: Path) -> None:
    def choice(**env: str) -> object:
        return run(tmp_path, script=CHOICE, XDG_CONFIG_HOME=str(tmp_path / "xdg"), **env)

    assert choice() == [True, "no ZenML configured"]
    user = str(tmp_path / "user-zenml")
    assert choice(ZENML_CONFIG_PATH=user) == [False, f"ZENML_CONFIG_PATH={user}"]
    ours = str(tmp_path / "home" / "zenml")  # as the embedded store sets it for the process
    assert choice(ZENML_CONFIG_PATH=ours) == [True, f"ZENML_CONFIG_PATH={ours}"]
    assert choice(ZENML_CONFIG_PATH=user, MODELPRESS_STACK="embedded") == [True, "MODELPRESS_STACK=embedded"]
    assert choice(MODELPRESS_STACK="mine") == {"error": "MODELPRESS_STACK=mine: expected one of auto, embedded"}
