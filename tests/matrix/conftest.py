"""Fixtures the support-matrix cell modules share; each module says how to make a family's
project with a module-level ``make_project(family, folder) -> recipe blocks``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="module")
def projects(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Any:
    """project(family) -> (folder, the recipe's model/data blocks), made once per module."""
    made: dict[str, tuple[Path, dict[str, Any]]] = {}

    def project(family: str) -> tuple[Path, dict[str, Any]]:
        if family not in made:
            folder = tmp_path_factory.mktemp(family)
            made[family] = (folder, request.module.make_project(family, folder))
        return made[family]

    return project


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One MLflow store for every build cell of a module (creating its tables takes seconds)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
