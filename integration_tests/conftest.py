from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest


def _load_shared_fixtures():
    # by path: the same file tests/conftest.py loads (the top level holds no shared conftest)
    path = Path(__file__).resolve().parents[1] / "tests" / "shared_fixtures.py"
    spec = importlib.util.spec_from_file_location("shared_fixtures", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_shared = _load_shared_fixtures()
modelpress_cli = _shared.modelpress_cli
_no_leaked_registry_uri = _shared._no_leaked_registry_uri


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory):
    """A real `mlflow server` (sqlite backend, --serve-artifacts) on 127.0.0.1, for the tests of a
    team's setup (team mode, racing promotions); stopped when the session ends."""
    from .team_servers import start_mlflow, stop

    server = start_mlflow(tmp_path_factory.mktemp("mlflow-server"))
    yield server
    stop(server.proc)
