"""A causal LM's splits in sequences or tokens: whole documents up to the size (counted with the
model's tokenizer), the sizes reported, and a warning when GPTQ would calibrate on too few."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from modelpress.core.errors import ModelpressError, RecipeError
from modelpress.datasets.splits import assign_splits
from modelpress.pipelines.plan import task_spec
from modelpress.pipelines.sizes import size_notes
from modelpress.recipe.schema import validate_recipe

from .conftest import WORDS, tiny_llama, word_tokenizer

# document i has 3 + i % 5 words: 4 + i % 5 tokens packed (its words and the EOS separator)
DOCS = [" ".join(WORDS[(i + j) % 100] for j in range(3 + i % 5)) for i in range(200)]
MAX_LENGTH = 16


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("lm-sizes")
    tiny_llama().save_pretrained(folder / "tiny-llm")
    word_tokenizer().save_pretrained(folder / "tiny-llm")
    (folder / "corpus.txt").write_text("\n".join(DOCS) + "\n")
    return folder


def recipe(split: dict, stage: dict | None = None) -> dict:
    stage = stage or {"weight-quantize": {"bits": 4, "granularity": "per-group", "group_size": 32,
                                          "algorithm": "gptq"}}
    return {"name": "tiny-lm", "model": {"source": "huggingface", "path": "tiny-llm",
                                         "task": {"name": "causal-lm", "max_length": MAX_LENGTH}},
            "data": {"source": "text", "path": "corpus.txt", "split": split},
            "stages": [stage], "gate": {"perplexity": {"max_ratio": 1.2}}, "registry": {"name": "tiny-lm"}}


def fitted(project: Path, split: dict) -> tuple[pd.DataFrame, dict]:
    loaded = validate_recipe(recipe(split), base=project)
    task = task_spec(loaded).build()
    data = loaded.data
    frame = task.fit_splits(assign_splits(data.load(), data.split, data.seed, data.limit), data.split)
    return frame, task.split_sizes(frame)


def packed_tokens(texts: list[str]) -> int:
    return sum(len(t.split()) + 1 for t in texts)


@pytest.mark.parametrize("size, sequences", [({"sequences": 5}, 5), ({"tokens": 70}, 5)])  # 70 tokens: 5 x 16
def test_calibration_in_sequences_or_tokens_takes_whole_documents_up_to_it(project, size, sequences):
    frame, sizes = fitted(project, {"eval": 0.25, "calibration": size})
    calibration = frame.loc[frame["split"] == "calibration", "text"].tolist()
    # the fewest leading documents whose packed tokens reach 5 sequences of 16
    assert packed_tokens(calibration) >= sequences * MAX_LENGTH > packed_tokens(calibration[:-1])
    assert sizes["calibration_sequences"] == sequences and sizes["calibration_tokens"] == sequences * MAX_LENGTH
    assert sizes["calibration_documents"] == len(calibration)
    assert (frame["split"] == "eval").sum() == 50  # the fraction still counts documents


def test_eval_in_sequences_then_calibration_after_it(project):
    frame, sizes = fitted(project, {"eval": {"sequences": 8}, "calibration": {"sequences": 3}})
    assert list(frame["split"].iloc[:3]) == ["eval"] * 3  # eval first, then calibration, then train
    assert sizes["eval_sequences"] == 8 and sizes["calibration_sequences"] == 3
    assert (frame["split"] == "train").sum() > 0


def test_documents_and_fractions_still_count_documents(project):
    frame, sizes = fitted(project, {"eval": 0.25, "calibration": 20})
    assert frame["split"].value_counts().to_dict() == {"train": 120, "eval": 50, "calibration": 20}
    assert sizes["calibration_documents"] == 20
    assert sizes["calibration_tokens"] == sizes["calibration_sequences"] * MAX_LENGTH


def test_a_size_the_corpus_cannot_fill_is_one_line(project):
    with pytest.raises(ModelpressError) as caught:
        fitted(project, {"eval": 0.25, "calibration": {"tokens": 100_000}})
    assert str(caught.value).startswith("data.split.calibration: {tokens: 100000} needs 100,000 tokens "
                                        "(6250 sequences of 16); the corpus has ")


def test_a_classifier_refuses_sizes_in_tokens(project):
    body = recipe({"calibration": {"sequences": 4}})
    body["model"]["task"] = "text-classification"
    body["data"] = {"source": "rotten-tomatoes", "split": {"calibration": {"sequences": 4}}}
    body["gate"] = {}
    with pytest.raises(RecipeError) as caught:
        validate_recipe(body, base=project)
    assert caught.value.problems == ["data.split: eval and calibration in sequences or tokens are for models that "
                                     "read tokens (causal-lm); a text-classification model takes fractions or "
                                     "row counts"]


def test_gptq_on_a_handful_of_sequences_is_warned_with_the_token_count(project):
    loaded = validate_recipe(recipe({"eval": 0.25, "calibration": {"sequences": 3}}), base=project)
    notes = size_notes(loaded, task_spec(loaded).build())
    assert notes[0].startswith("data: calibration 3 sequences (48 tokens, ")
    assert notes[1] == ("warning: stages[0].weight-quantize: GPTQ calibrates on 3 sequences (48 tokens; "
                        "data.split.calibration); below 16 its perplexity suffers (benchmarks/RESULTS.md, "
                        "calibration size): give data.split.calibration: {sequences: 16} or more")


def test_enough_sequences_or_no_gptq_gives_no_warning(project):
    for split, stage in [({"calibration": {"sequences": 40}}, None),
                         ({"calibration": {"sequences": 3}}, {"weight-quantize": {"bits": 8}})]:  # RTN
        loaded = validate_recipe(recipe(split, stage), base=project)
        assert [n for n in size_notes(loaded, task_spec(loaded).build()) if n.startswith("warning")] == []


def test_calibration_samples_below_the_split_are_warned_too(project):
    stage = {"weight-quantize": {"bits": 4, "granularity": "per-group", "group_size": 32, "algorithm": "gptq",
                                 "calibration": {"samples": 8}}}
    loaded = validate_recipe(recipe({"calibration": {"sequences": 40}}, stage), base=project)
    warning = size_notes(loaded, task_spec(loaded).build())[1]
    assert warning.startswith("warning: stages[0].weight-quantize: GPTQ calibrates on 8 sequences (128 tokens; "
                              "calibration.samples)")


def test_validate_prints_the_warning(project, modelpress_cli):
    (project / "recipe.yaml").write_text(yaml.safe_dump(recipe({"eval": 0.25, "calibration": 64})))
    result = subprocess.run([modelpress_cli, "validate", "recipe.yaml"], cwd=project, capture_output=True,
                            text=True, check=False, timeout=120)
    assert result.returncode == 0, result.stderr
    # 64 documents asked, 35 given (a quarter of the 140 train documents), packed by hand
    frame, _ = fitted(project, {"eval": 0.25, "calibration": 64})
    calibration = frame.loc[frame["split"] == "calibration", "text"].tolist()
    sequences = packed_tokens(calibration) // MAX_LENGTH
    assert len(calibration) == 35 and sequences < 16
    assert f"data: calibration {sequences} sequences ({sequences * MAX_LENGTH} tokens, 35 documents)" in result.stdout
    assert (f"warning: stages[0].weight-quantize: GPTQ calibrates on {sequences} sequences "
            f"({sequences * MAX_LENGTH} tokens; data.split.calibration)") in result.stderr
