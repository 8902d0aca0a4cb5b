"""Bad input fails before any model is loaded or trained, names the field or file, registers nothing."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from modelpress.datasets.shipped import SHIPPED

from .helpers import run_cli

pytestmark = pytest.mark.slow


def csv_recipe(project: Path, frame: pd.DataFrame, name: str) -> Path:
    data_path = project / f"{name}.csv"
    frame.to_csv(data_path, index=False)
    recipe = {
        "name": name,
        "model": {"source": "package", "name": "small-cnn", "baseline": {"epochs": 1}},
        "data": {"source": "csv", "path": str(data_path), "label": "digit",
                 "features": [f"f{i}" for i in range(64)], "image_shape": [1, 8, 8], "labels": list(range(10))},
        "stages": [{"prune": {"sparsity": 0.5}}],
        "registry": {"name": name},
    }
    path = project / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def digits_frame() -> pd.DataFrame:
    return SHIPPED["digits"].load().iloc[:300].rename(columns={"label": "digit"})


def assert_nothing_registered(project: Path) -> None:
    db = project / ".modelpress" / "mlflow.db"
    if db.exists():
        from .helpers import mlflow_client

        assert mlflow_client(project).search_registered_models() == []


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bad-input")


@pytest.mark.parametrize("corrupt, expectation", [
    (lambda f: f.assign(digit=f["digit"].where(f.index % 50 != 3)), "expect_column_values_to_not_be_null"),
    (lambda f: f.assign(digit=f["digit"].where(f.index != 17, 11)), "expect_column_values_to_be_in_set"),
])
def test_csv_with_bad_labels_stops_at_validation(project: Path, modelpress_cli: str, corrupt, expectation: str) -> None:
    path = csv_recipe(project, corrupt(digits_frame()), f"bad-{expectation[-8:].strip('_')}")
    result = run_cli(modelpress_cli, project, "run", str(path))
    assert result.returncode == 1
    assert expectation in result.stderr and ".csv failed validation" in result.stderr
    assert "failing row(s)" in result.stderr
    assert "Step load_model has started" not in result.output
    assert_nothing_registered(project)


@pytest.mark.parametrize("edit, field", [
    (lambda r: r.update(stages=[{"shrink": {}}]), "stages[0]"),
    (lambda r: r.update(stages=[{"prune": {"sparsity": "half"}}]), "stages[0].prune.sparsity"),
    (lambda r: r.update(stages=[{"prune": {"sparsity": 1.5}}]), "stages[0].prune.sparsity"),
    (lambda r: r.update(model={"source": "file", "path": "missing.pt", "task": "image-classification"}), "model.path"),
])
def test_bad_recipe_fails_before_anything_runs(project: Path, modelpress_cli: str, edit, field: str) -> None:
    path = csv_recipe(project, digits_frame(), "fine")
    recipe = yaml.safe_load(path.read_text())
    edit(recipe)
    path.write_text(yaml.safe_dump(recipe))
    result = run_cli(modelpress_cli, project, "run", str(path))
    assert result.returncode == 2
    assert f"{field}:" in result.stderr
    assert "Step " not in result.output  # no ZenML step ever started
    assert_nothing_registered(project)


def test_recipe_that_is_not_yaml(project: Path, modelpress_cli: str) -> None:
    path = project / "broken.yaml"
    path.write_text("name: [unclosed\n")
    result = run_cli(modelpress_cli, project, "run", str(path))
    assert result.returncode == 2 and "not valid YAML" in result.stderr and "broken.yaml" in result.stderr
    assert_nothing_registered(project)
