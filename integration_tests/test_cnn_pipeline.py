"""The shipped CNN recipe through a real ZenML pipeline, embedded stack, MLflow sqlite registry,
run from inside a user project that has its own `steps` and `pipelines` packages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from modelpress.recipe.schema import shipped_recipes

from .helpers import make_user_project, mlflow_client, project_env, run_cli

pytestmark = pytest.mark.slow
MODEL = "mnist-cnn"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_user_project(tmp_path_factory.mktemp("user-project"))


@pytest.fixture(scope="module")
def first_run(project: Path, modelpress_cli: str):
    result = run_cli(modelpress_cli, project, "run", MODEL)
    assert result.returncode == 0, result.output[-4000:]
    return result


def test_run_logs_metrics_and_both_models_and_promotes(project: Path, first_run) -> None:
    assert "gate: PASSED" in first_run.stdout
    client = mlflow_client(project)
    version = client.get_model_version_by_alias(MODEL, "champion")
    assert set(version.aliases) == {"challenger", "champion"}
    assert version.tags["gate"] == "passed" and version.tags["recipe"] == MODEL
    run = client.get_run(version.run_id)
    for metric in ("baseline.accuracy", "candidate.accuracy", "candidate.size_mb", "candidate.agreement",
                   "parity.agreement", "gate_passed"):
        assert metric in run.data.metrics, metric
    assert run.data.metrics["candidate.size_mb"] < run.data.metrics["baseline.size_mb"]
    logged = {m.name for m in client.search_logged_models([run.info.experiment_id])
              if m.source_run_id == run.info.run_id}
    assert logged == {"onnx_model", "pytorch_model"}
    report = json.loads(Path(client.download_artifacts(run.info.run_id, "report/report.json")).read_text())
    assert report["verdict"]["passed"] is True


def test_steps_are_recorded_under_modelpress_sources(project: Path, first_run) -> None:
    code = ("from zenml.client import Client\n"
            "run = Client().list_pipeline_runs(sort_by='desc:created', size=1).items[0]\n"
            "print('\\n'.join(s.spec.source.import_path for s in run.steps.values()))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=project, env=_zenml_env(project),
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    sources = done.stdout.split()
    # the recipe's own steps and the public steps it is built from, never a bare `pipelines.`/`steps.`
    assert sources and all(s.startswith(("modelpress.pipelines.", "modelpress.zenml.")) for s in sources), sources
    assert {"modelpress.zenml.techniques.prune", "modelpress.zenml.registry.register"} <= set(sources)


def test_user_packages_still_import_next_to_modelpress(project: Path, first_run) -> None:
    script = project / "use_both.py"  # a file, as ZenML needs a main module to find its source root
    script.write_text(
        "import steps, pipelines, steps.train, modelpress.steps, modelpress.pipelines.compress\n"
        "assert steps.USER_STEPS and pipelines.USER_PIPELINES and steps.train.user_train()\n"
        "assert modelpress.steps.__name__ == 'modelpress.steps'\n"
        "print('ok')\n")
    done = subprocess.run([sys.executable, str(script)], cwd=project, env=_zenml_env(project),
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok")


def test_impossible_gate_fails_with_reason_and_keeps_the_champion(project: Path, first_run,
                                                                  modelpress_cli: str) -> None:
    client = mlflow_client(project)
    champion = client.get_model_version_by_alias(MODEL, "champion").version
    recipe = yaml.safe_load(shipped_recipes()[MODEL].read_text())
    recipe["gate"] = {"size_mb": {"max_ratio": 0.001}}
    path = project / "impossible.yaml"
    path.write_text(yaml.safe_dump(recipe))

    result = run_cli(modelpress_cli, project, "run", str(path))
    assert result.returncode == 1
    assert "gate failed" in result.stderr and "size_mb.max_ratio" in result.stderr
    assert client.get_model_version_by_alias(MODEL, "champion").version == champion
    newest = max(client.search_model_versions(f"name='{MODEL}'"), key=lambda v: int(v.version))
    assert newest.tags["gate"] == "failed" and "size_mb.max_ratio" in newest.tags["gate_reason"]
    # aliases as the registry holds them (a search result's aliases are always [])
    assert client.get_model_version(MODEL, newest.version).aliases == []
    assert newest.version not in client.get_registered_model(MODEL).aliases.values()


def test_identical_rerun_is_served_from_cache(project: Path, first_run, modelpress_cli: str) -> None:
    result = run_cli(modelpress_cli, project, "run", MODEL)
    assert result.returncode == 0, result.output[-3000:]
    cached = result.stdout.split("cached steps:")[1].split("\n")[0]
    # the gate itself re-runs: it compares against whatever @champion is now
    for step in ("load_data", "validate_data", "load_model", "export_baseline", "stage1_prune",
                 "export_candidate", "stage2_quantize", "evaluate"):
        assert step in cached, (step, cached)
    assert "publish" not in cached and "promote" not in cached


def _zenml_env(project: Path) -> dict[str, str]:
    env = project_env(project)
    env["ZENML_CONFIG_PATH"] = str(project / ".modelpress" / "zenml")
    return env
