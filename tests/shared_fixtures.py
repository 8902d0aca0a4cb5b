"""Fixtures and environment shared by tests/conftest.py and integration_tests/conftest.py.

The top level holds no conftest.py, so each suite's conftest loads this file by path and
assigns the fixtures as its own globals (pytest only sees fixtures a conftest holds).
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("ZENML_ANALYTICS_OPT_IN", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# ZenML's global config (click.get_app_dir("zenml"): $XDG_CONFIG_HOME/zenml) decides whether a run
# records in the user's own ZenML (src/modelpress/tracking/zenml_config.py): the tests get an empty
# one of their own, so that the developer's ZenML does not change where their runs go (a test that
# needs a configured global ZenML points XDG_CONFIG_HOME at its own folder).
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="modelpress-tests-config-")
atexit.register(shutil.rmtree, os.environ["XDG_CONFIG_HOME"], True)


@pytest.fixture(scope="session")
def modelpress_cli() -> str:
    """The installed console script (the one a user runs)."""
    found = shutil.which("modelpress", path=str(Path(sys.executable).parent)) or shutil.which("modelpress")
    assert found, "modelpress is not installed in this environment"
    return found


@pytest.fixture(autouse=True)
def _no_leaked_registry_uri():
    """A test that sets MLflow's global registry (or tracking) URI must not redirect later tests'
    clients (MLflow's registry URI otherwise falls back to the global tracking URI); threads that
    each borrow and restore the global URIs (the promotion race) can leave another's behind."""
    mlflow = sys.modules.get("mlflow")
    tracking_before = None
    if mlflow is not None:
        from mlflow.tracking._tracking_service import utils as tracking_utils

        tracking_before = tracking_utils._tracking_uri
    # set_registry_uri/set_tracking_uri also export MLFLOW_*_URI, and setting None does not unset them
    environment = {key: os.environ.get(key) for key in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    yield
    mlflow = sys.modules.get("mlflow")
    if mlflow is not None:
        mlflow.set_registry_uri(None)
        mlflow.set_tracking_uri(tracking_before)
    for key, value in environment.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
