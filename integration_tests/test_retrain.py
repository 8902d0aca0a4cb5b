"""Retraining from the registry: a champion made by a real run, then `modelpress retrain` on
drifted data stops at validation with a readable report, registers and promotes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from modelpress.datasets.shipped import SHIPPED

from .helpers import mlflow_client, run_cli

pytestmark = pytest.mark.slow
NAME = "digits-retrain"
RECIPE = {
    "name": NAME,
    "model": {"source": "package", "name": "small-cnn", "baseline": {"epochs": 2, "lr": 3.0e-3}},
    "data": {"source": "digits", "split": {"train": 0.75, "eval": 0.25, "calibration": 32}, "seed": 0},
    "stages": [{"quantize": {"bits": 8, "operators": ["MatMul", "Gemm"]}}],
    "gate": {"accuracy": {"max_drop": 0.05}},
    "registry": {"name": NAME},
}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, modelpress_cli: str) -> Path:
    root = tmp_path_factory.mktemp("retrain")
    (root / "recipe.yaml").write_text(yaml.safe_dump(RECIPE))
    done = run_cli(modelpress_cli, root, "run", "recipe.yaml", timeout=1200)
    assert done.returncode == 0, done.output[-4000:]
    return root


def test_drifted_data_stops_retraining_before_training(project: Path, modelpress_cli: str) -> None:
    client = mlflow_client(project)
    champion = client.get_model_version_by_alias(NAME, "champion")
    run = client.get_run(champion.run_id)
    artifacts = {a.path for folder in ("recipe", "data", "report")
                 for a in client.list_artifacts(run.info.run_id, folder)}
    assert {"recipe/recipe.json", "data/profile.json", "report/gate.html", "report/pareto.svg"} <= artifacts
    assert "gate.accuracy.max_drop" in run.data.metrics  # every check's number is a metric

    fresh = SHIPPED["digits"].load().sample(600, random_state=1)
    fresh["label"] = fresh["label"] % 3  # the label balance shifted to three classes
    features = [c for c in fresh.columns if c.startswith("f")]
    fresh[features] = (fresh[features] * 1.6).clip(upper=1.0)  # and the pixels brightened
    fresh.to_csv(project / "fresh.csv", index=False)

    done = run_cli(modelpress_cli, project, "retrain", NAME, "--data", "fresh.csv", timeout=1200)
    assert done.returncode == 1, done.output[-3000:]
    assert "fresh data drifted from the reference profile" in done.stderr
    assert "label balance: KL divergence from the reference" in done.stderr
    assert "nothing was trained or promoted" in done.stderr
    versions = client.search_model_versions(f"name='{NAME}'")
    assert [v.version for v in versions] == [champion.version]  # nothing registered
    assert client.get_model_version_by_alias(NAME, "champion").version == champion.version

