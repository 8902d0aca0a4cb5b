"""A causal-LM recipe that scores a local multiple-choice file: the gate accepts its metrics (and
only those of configured tasks), and gates on them and on perplexity, with per-item samples."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pandas as pd
import pytest

from modelpress.core.errors import RecipeError
from modelpress.gate.rules import run_gate
from modelpress.recipe.schema import validate_recipe
from modelpress.tasks import TaskSpec

from .conftest import WORDS, tiny_llama, word_tokenizer

ITEMS = [{"context": f"w{i} w{i + 1}", "choices": [f"w{i + 2}", f"w{i + 9}"], "gold": i % 2} for i in range(12)]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("lm-tasks")
    tiny_llama().save_pretrained(folder / "tiny-llm")
    word_tokenizer().save_pretrained(folder / "tiny-llm")
    docs = [" ".join(WORDS[(i * 7 + j) % 60] for j in range(5 + i % 7)) for i in range(160)]
    (folder / "corpus.txt").write_text("\n".join(docs) + "\n")
    (folder / "mc.jsonl").write_text("\n".join(json.dumps(r) for r in ITEMS) + "\n")
    return folder


def recipe(folder: Path, gate: dict, tasks: list | None = None) -> dict:
    if tasks is None:
        tasks = [{"name": "mc", "kind": "multiple-choice", "path": str(folder / "mc.jsonl")}]
    return {"name": "tiny-lm", "model": {"source": "huggingface", "path": "tiny-llm",
                                         "task": {"name": "causal-lm", "max_length": 16, "eval_sequences": 4,
                                                  "continuation_tokens": 0, "decode_tokens": 2,
                                                  "latency_length": 8, "tasks": tasks}},
            "data": {"source": "text", "path": "corpus.txt"},
            "stages": [{"weight-quantize": {"bits": 8}}], "gate": gate, "registry": {"name": "tiny-lm"}}


def problems(folder: Path, body: dict) -> list[str]:
    with pytest.raises(RecipeError) as caught:
        validate_recipe(body, base=folder)
    return caught.value.problems


GATE = {"tasks.mc.acc": {"max_drop": 0.02}, "perplexity": {"max_ratio": 1.2}}


def test_the_gate_takes_the_configured_tasks_metrics(project):
    loaded = validate_recipe(recipe(project, GATE), base=project)
    assert set(loaded.gate) == {"tasks.mc.acc", "perplexity"}


@pytest.mark.parametrize("gate, expected", [
    ({"tasks.headline_mc.acc": {"max_drop": 0.02}},
     "gate.tasks.headline_mc.acc: model.task configures no task that measures it; configured: tasks.mc.acc, "
     "tasks.mc.acc_norm"),
    ({"tasks.mc.exact_match": {"min": 0.5}},  # a multiple-choice task has no exact match
     "gate.tasks.mc.exact_match: model.task configures no task that measures it; configured: tasks.mc.acc, "
     "tasks.mc.acc_norm"),
    ({"tasks.mc.acc": {"min": 1.5}}, "gate.tasks.mc.acc: min (1.5) is above the largest possible tasks.mc.acc (1.0)"),
])
def test_a_gate_on_a_task_not_configured_is_one_line_naming_the_field(project, gate, expected):
    assert problems(project, recipe(project, gate)) == [expected]


@pytest.mark.parametrize("entry, expected", [
    ({"name": "mc", "kind": "multi-choice", "path": "mc.jsonl"},
     "model.task.tasks[0]: kind: 'multi-choice' is not a task kind; known: exact-match, multiple-choice"),
    ({"name": "mc", "kind": "multiple-choice", "path": "nowhere.jsonl"},
     "model.task.tasks[0]: path: nowhere.jsonl: no such file"),
    ({"name": "mc", "kind": "multiple-choice"},
     "model.task.tasks[0]: give exactly one of path (a JSONL file) or shipped (an example task)"),
    ({"name": "mc", "kind": "multiple-choice", "shipped": "rotten-tomatoes-cloze", "max_tokens": 3},
     "model.task.tasks[0]: max_tokens: Extra inputs are not permitted"),
])
def test_a_bad_task_entry_is_one_line_naming_it(project, entry, expected):
    assert problems(project, recipe(project, {}, [entry])) == [expected]


def test_the_recipe_gates_on_the_task_file_and_perplexity_and_an_impossible_bound_fails(project, monkeypatch):
    monkeypatch.chdir(project)
    impossible = {**GATE, "perplexity": {"max_ratio": 0.5}}  # half the baseline's perplexity: never
    loaded = validate_recipe(recipe(project, impossible), base=project)
    task = TaskSpec("causal-lm", tokenizer=str(project / "tiny-llm"),
                    options=loaded.task_config.model_dump(mode="json", exclude={"name"})).build()
    docs = (project / "corpus.txt").read_text().splitlines()
    frame = pd.DataFrame({"text": docs[:80], "split": "eval"})
    baseline = tiny_llama()
    evaluation = task.evaluate(baseline, copy.deepcopy(baseline), frame)
    assert evaluation.baseline["tasks.mc.acc"] == evaluation.candidate["tasks.mc.acc"]
    samples = evaluation.samples["tasks.mc.acc"]
    assert samples.statistic == "mean" and len(samples.baseline) == len(ITEMS) == len(samples.candidate)
    assert evaluation.samples["perplexity"].statistic == "exp_ratio"
    assert len(evaluation.samples["perplexity"].weights) == 4  # eval_sequences
    verdict = run_gate(loaded.gate, evaluation)
    assert not verdict.passed
    by_metric = {c.metric: c.passed for c in verdict.checks}
    assert by_metric == {"tasks.mc.acc": True, "perplexity": False}
    # both checks decided on paired intervals (the same model on both sides: a point interval)
    assert all(c.low is not None and c.high is not None and c.rows for c in verdict.checks)
    assert verdict.reason == "perplexity.max_ratio: 1 [1, 1] ≤ 0.5 FAILED"
