"""Causal-LM recipes at `modelpress validate`: the data kinds it reads, and each bad input as one
line naming the field or the file (exit 2, no traceback), before any model is loaded."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from .conftest import tiny_llama, word_tokenizer

DOCUMENTS = [f"w{i} w{i + 1} w{i + 2} w{i + 3}" for i in range(60)]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("lm-recipes")
    model = tiny_llama()  # max_position_embeddings 128
    model.save_pretrained(folder / "tiny-llm")
    word_tokenizer().save_pretrained(folder / "tiny-llm")
    (folder / "corpus.txt").write_text("\n".join(DOCUMENTS) + "\n")
    (folder / "corpus.jsonl").write_text("\n".join(json.dumps({"body": d}) for d in DOCUMENTS) + "\n")
    pd.DataFrame({"review": DOCUMENTS}).to_csv(folder / "reviews.csv", index=False)
    (folder / "blank.txt").write_text("\n   \n\t\n")
    return folder


def recipe(**changes: object) -> dict:
    body = {"name": "tiny-lm", "model": {"source": "huggingface", "path": "tiny-llm",
                                         "task": {"name": "causal-lm", "max_length": 16}},
            "data": {"source": "text", "path": "corpus.txt"},
            "stages": [{"weight-quantize": {"bits": 4, "granularity": "per-group", "group_size": 32}}],
            "gate": {"perplexity": {"max_ratio": 1.2}}, "registry": {"name": "tiny-lm"}}
    return {**body, **changes}


def validate(cli: str, folder: Path, body: dict) -> subprocess.CompletedProcess:
    (folder / "recipe.yaml").write_text(yaml.safe_dump(body))
    return subprocess.run([cli, "validate", "recipe.yaml"], cwd=folder, capture_output=True, text=True, check=False,
                          timeout=120)


def problem(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
    assert lines[0].endswith("1 problem(s)"), lines
    assert len(lines) == 2, lines
    return lines[1]


@pytest.mark.parametrize("data", [
    {"source": "text", "path": "corpus.txt"},
    {"source": "text", "path": "corpus.jsonl", "field": "body"},
    {"source": "csv", "path": "reviews.csv", "text": "review"},
    {"source": "rotten-tomatoes"},
], ids=["text", "jsonl", "csv-column", "shipped"])
def test_each_corpus_kind_validates_for_the_task_the_folder_names(project, modelpress_cli, data):
    result = validate(modelpress_cli, project, recipe(data=data))
    assert result.returncode == 0, result.stderr
    assert "ok (causal-lm, stages: weight-quantize)" in result.stdout


def test_max_length_beyond_the_models_context(project, modelpress_cli):
    body = recipe(model={"source": "huggingface", "path": "tiny-llm", "task": {"name": "causal-lm", "max_length": 512}})
    assert problem(validate(modelpress_cli, project, body)) == (
        "model.task.max_length: 512 is beyond the model's context of 128 tokens (max_position_embeddings)")


def test_a_text_file_with_no_usable_lines(project, modelpress_cli):
    line = problem(validate(modelpress_cli, project, recipe(data={"source": "text", "path": "blank.txt"})))
    assert line.startswith("data.path: ")
    assert line.endswith("blank.txt: no usable lines (every document is empty or blank)")


def test_a_gate_on_accuracy_names_the_tasks_metrics(project, modelpress_cli):
    line = problem(validate(modelpress_cli, project, recipe(gate={"accuracy": {"min": 0.9}})))
    assert line == ("gate: a causal-lm model cannot produce accuracy; available: perplexity, kl, agreement, "
                    "size_mb, latency_ms, tokens_per_s, peak_memory_mb")


def test_a_classifier_recipe_on_a_corpus_needs_labels(project, modelpress_cli):
    body = recipe(model={"source": "huggingface", "path": "tiny-llm", "task": "text-classification"}, gate={})
    assert problem(validate(modelpress_cli, project, body)).startswith(
        "data.label: a text-classification model learns from labels; data.source text gives none")


@pytest.mark.parametrize("change, expected", [
    ({"export": ["compressed-tensors"], "stages": [{"weight-quantize": {"bits": 3, "granularity": "per-group",
                                                                         "group_size": 32}}]},
     "export[1].compressed-tensors: int3 weights — vLLM's compressed-tensors kernels take 4- or 8-bit integers"),
    ({"export": ["gguf"], "stages": [{"lowrank": {"param_budget": 0.5}}]},
     "export[1].gguf: lowrank factors each Linear into two; the architecture's checkpoint has one weight per "
     "projection"),
    ({"stages": [{"prune": {"method": "structured", "target": "heads"}}]},
     "stages[0].prune: target 'heads': head pruning of Llama-style decoders (grouped-query attention) "
     "is not supported"),
    ({"stages": [{"distill": {"student": {"width": 0.5}}}]},
     "stages[0].distill: a causal-lm model cannot give a student derived by width"),
], ids=["ct-int3", "gguf-lowrank", "llama-heads", "student-width"])
def test_combinations_that_cannot_work_are_refused_naming_why(project, modelpress_cli, change, expected):
    assert problem(validate(modelpress_cli, project, recipe(**change))).startswith(expected)
