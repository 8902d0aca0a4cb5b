"""`modelpress search`: six candidates on digits as cached ZenML runs of the same pipeline;
the smallest passing one is promoted and the Pareto set reported in MLflow and HTML."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from .helpers import mlflow_client, run_cli

pytestmark = pytest.mark.slow
NAME = "digits-search-test"
RECIPE = {
    "name": NAME,
    "model": {"source": "package", "name": "small-cnn", "baseline": {"epochs": 3, "lr": 3.0e-3}},
    "data": {"source": "digits", "split": {"train": 0.75, "eval": 0.25, "calibration": 32}, "seed": 0},
    "stages": [{"prune": {"method": "structured", "sparsity": 0.5, "recovery": {"epochs": 1}}},
               {"quantize": {"bits": 8, "operators": ["MatMul", "Gemm"]}}],
    "gate": {"accuracy": {"max_drop": 0.05}},
    "registry": {"name": NAME},
    "search": {"objective": "size_mb", "grid": {
        "prune.enabled": [True, False], "prune.sparsity": [0.5, 0.75],
        "quantize.operators": [["MatMul", "Gemm"], ["MatMul", "Gemm", "Conv"]]}},
}


def test_search_runs_candidates_cached_promotes_the_smallest_passing(tmp_path: Path, modelpress_cli: str) -> None:
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(RECIPE))
    done = run_cli(modelpress_cli, tmp_path, "search", "recipe.yaml", timeout=1800)  # ~2 min idle
    assert done.returncode == 0, done.output[-4000:]
    client = mlflow_client(tmp_path)
    versions = client.search_model_versions(f"name='{NAME}'")
    assert len(versions) == 6  # 2 sparsities x 2 quantizers composed, 2 quantizers alone

    [search_run] = client.search_runs([client.get_experiment_by_name(NAME).experiment_id],
                                      "tags.`modelpress.settings.search` = 'true'")
    table = json.loads(Path(client.download_artifacts(search_run.info.run_id, "search/candidates.json",
                                                      str(tmp_path))).read_text())
    rows = [dict(zip(table["columns"], row)) for row in table["data"]]
    passing = [r for r in rows if r["passed"]]
    best = min(passing, key=lambda r: r["size_mb"])
    champion = client.get_model_version_by_alias(NAME, "champion")
    assert str(champion.version) == str(best["version"]) and "search best on size_mb" in champion.tags["promotion"]
    assert any(r["pareto"] for r in passing) and best["pareto"]
    assert {r["techniques"] for r in rows} == {"prune+quantize", "quantize"}
    # shared prefix: data, validation, baseline training and export ran once, then were cached
    for row in rows[1:]:
        assert {"load_data", "load_model", "export_baseline"} <= set(row["cached_steps"].split(","))
    assert "stage1_prune" in rows[1]["cached_steps"]  # same pruning, other quantizer: reused

    page = (tmp_path / ".modelpress" / "search" / f"{NAME}.html").read_text()
    assert page.count("<tr>") == 7 and "<svg" in page and "id='best'" in page
    assert "search/report.html" in {a.path for a in client.list_artifacts(search_run.info.run_id, "search")}
