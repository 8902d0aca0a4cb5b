"""Retraining from the registry: a champion made by a real run, then `modelpress retrain` on
drifted data stops at validation with a readable report, registers and promotes nothing; an LLM
champion (a corpus, `source: text`) retrains on a fresh text file its data source points itself at."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from modelpress.datasets.shipped import SHIPPED

from .helpers import mlflow_client, run_cli
from .llm_models import write_corpus, write_tiny_llm

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



LLM = "tiny-llm-retrain"
LLM_RECIPE = {
    "name": LLM,
    "model": {"source": "huggingface", "path": "tiny-llm",
              "task": {"name": "causal-lm", "max_length": 32, "eval_sequences": 8, "latency_length": 32,
                       "decode_tokens": 8, "continuation_tokens": 4, "prompts": ["the film was"]}},
    "data": {"source": "text", "path": "corpus.txt", "split": {"train": 0.4, "eval": 0.3, "calibration": 60}},
    "stages": [{"weight-quantize": {"bits": 8, "granularity": "per-channel"}}],  # RTN: no calibration pass
    "gate": {"perplexity": {"max_ratio": 1.5}},
    "registry": {"name": LLM},
}


@pytest.fixture(scope="module")
def llm_project(tmp_path_factory: pytest.TempPathFactory, modelpress_cli: str) -> Path:
    root = tmp_path_factory.mktemp("llm-retrain")
    write_tiny_llm(root / "tiny-llm")
    write_corpus(root / "corpus.txt")
    (root / "recipe.yaml").write_text(yaml.safe_dump(LLM_RECIPE))
    done = run_cli(modelpress_cli, root, "run", "recipe.yaml", timeout=1200)
    assert done.returncode == 0, done.output[-4000:]
    return root


def test_an_llm_champion_retrains_on_a_fresh_text_file(llm_project: Path, modelpress_cli: str) -> None:
    import json

    from modelpress.core.files import sha256_file

    client = mlflow_client(llm_project)
    champion = client.get_model_version_by_alias(LLM, "champion")
    fresh = write_corpus(llm_project / "fresh.txt", documents=300, seed=7)  # new documents, same vocabulary

    done = run_cli(modelpress_cli, llm_project, "retrain", LLM, "--data", "fresh.txt", timeout=1200)
    assert done.returncode == 0, done.output[-4000:]
    assert "gate: PASSED" in done.stdout
    retrained = max(client.search_model_versions(f"name='{LLM}'"), key=lambda v: int(v.version))
    assert int(retrained.version) == int(champion.version) + 1
    # trained and measured on the fresh corpus: its digest keys the data, its recipe points at it
    assert retrained.tags["data_fingerprint"] == f"sha256:{sha256_file(fresh)}"
    run_id = retrained.tags.get("mlflow_run_id") or retrained.run_id
    recipe = json.loads(Path(client.download_artifacts(run_id, "recipe/recipe.json")).read_text())
    assert recipe["data"]["source"] == "text" and Path(recipe["data"]["path"]) == fresh.resolve()
    assert recipe["data"]["split"] == LLM_RECIPE["data"]["split"]
    profile = json.loads(Path(client.download_artifacts(run_id, "data/profile.json")).read_text())
    assert profile["columns"] == ["text"] and profile["labels"] == []  # a corpus: no label checks
