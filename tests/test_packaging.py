"""Layout guarantees: the installed package is the only way in (src/modelpress/DESIGN.md, "Packaging")."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MAPPED = ("steps", "pipelines", "kernels", "deploy")


@pytest.mark.parametrize("folder", MAPPED)
def test_bare_import_from_repo_root_fails_loudly(folder: str) -> None:
    result = subprocess.run([sys.executable, "-c", f"import {folder}"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode != 0
    assert f"only importable as 'modelpress.{folder}'" in result.stderr


@pytest.mark.parametrize("folder", MAPPED)
def test_mapped_packages_come_from_the_installation_not_the_checkout(folder: str) -> None:
    import importlib

    module = importlib.import_module(f"modelpress.{folder}")
    location = Path(module.__file__).resolve()
    # CI keeps its venv inside the clone (.venv), so "outside the repo" is not the test; what
    # matters is that the code is the installed copy, never the checkout's source folder.
    assert REPO / folder not in location.parents
    assert "site-packages" in location.parts


def test_zenml_repository_at_repo_root_is_ignored() -> None:
    assert ".zen/" in (REPO / ".gitignore").read_text().splitlines()


def test_cli_start_up_does_not_import_heavy_modules() -> None:
    code = ("import sys; from modelpress.cli.main import main; from modelpress.recipe.schema import load_recipe; "
            "load_recipe('mnist-cnn'); "
            "print(sorted(m for m in ('torch', 'zenml', 'mlflow', 'onnxruntime', 'transformers', "
            "'great_expectations') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
